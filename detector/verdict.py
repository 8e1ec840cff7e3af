"""One verdict policy: a threshold on p(fake) and an *unsure* band around it → a label.

The band may be asymmetric (``unsure_margin`` below the threshold, ``unsure_above`` above it): a model
card sets it to cover the range where thresholds validated on different photo sources disagree.

``Detector.detect`` applies it once per result (``label``: the side of the threshold, ``verdict``: the
same with the unsure band); reports, robustness re-checks, the CLI and the app read those fields or ask
the same policy object, so no two parts of a request can disagree about an image.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

#: Scores within this distance of the threshold are reported as "unsure".
DEFAULT_UNSURE_MARGIN = 0.1


@dataclass(frozen=True)
class VerdictPolicy:
    threshold: float = 0.5
    unsure_margin: float = DEFAULT_UNSURE_MARGIN  # the band's width below the threshold (and above, by default)
    unsure_above: float | None = None  # the band's width above the threshold; None: unsure_margin

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must lie strictly between 0 and 1 (got {self.threshold})")
        if not 0.0 <= self.unsure_margin < 0.5:
            raise ValueError(f"unsure_margin must lie in [0, 0.5) (got {self.unsure_margin})")
        if self.unsure_above is not None and not 0.0 <= self.unsure_above < 0.5:
            raise ValueError(f"unsure_above must lie in [0, 0.5) (got {self.unsure_above})")

    @property
    def band(self) -> tuple[float, float]:
        """(low, high): scores strictly between them are "unsure"."""
        above = self.unsure_margin if self.unsure_above is None else self.unsure_above
        return self.threshold - self.unsure_margin, self.threshold + above

    def label(self, p_fake: float | None) -> str | None:
        """"fake" at or above the threshold, "real" below it; None without a score."""
        if p_fake is None:
            return None
        return "fake" if p_fake >= self.threshold else "real"

    def verdict(self, p_fake: float | None, low_confidence: bool = False) -> str:
        """The label, or "unsure" inside the band around the threshold or for a score flagged low
        confidence (e.g. an image far smaller than the model's input); "error" without a score."""
        if p_fake is None:
            return "error"
        low, high = self.band
        if low_confidence or low < p_fake < high:
            return "unsure"
        return self.label(p_fake)  # type: ignore[return-value]

    def apply(self, result) -> None:
        """Set a scored ``DetectionResult``'s ``label`` and ``verdict`` by this policy (errors stay "error")."""
        if result.p_fake is not None:
            result.label, result.verdict = self.label(result.p_fake), self.verdict(result.p_fake, result.low_confidence)

    def flips(self, p_before: float | None, p_after: float | None) -> bool:
        """Whether the label changes side of the threshold between two scores of one image."""
        if p_before is None or p_after is None:
            return False
        return self.label(p_before) != self.label(p_after)

    def with_threshold(self, threshold: float | None) -> VerdictPolicy:
        return self if threshold is None else replace(self, threshold=float(threshold))

    def to_dict(self) -> dict:
        out = {"threshold": self.threshold, "unsure_margin": self.unsure_margin}
        if self.unsure_above is not None:
            out["unsure_above"] = self.unsure_above
        return out

    def describe_band(self) -> str:
        low, high = self.band
        return f"p between {low:.2f} and {high:.2f}"
