"""``DetectionResult``: the verdict and evidence for one input, immutable. A different verdict policy,
or a different name for the file, yields a new result (``with_policy``, ``renamed``); nothing edits one
after the pipeline made it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from .provenance import Provenance
from .tiling import TileGrid
from .verdict import VerdictPolicy


@dataclass(frozen=True, eq=False)
class DetectionResult:
    """The verdict and evidence for one input. ``error`` is set (and the scores empty) for a bad input."""

    source: str
    p_fake: float | None = None
    label: str | None = None  # "fake" | "real": the side of the threshold
    verdict: str | None = None  # the label, "unsure" near the threshold, or "error" (``VerdictPolicy``)
    logit: float | None = None
    error: str | None = None
    image: np.ndarray | None = None  # H×W×3 uint8: the crop (or tile) the model saw
    eps: np.ndarray | None = None  # H×W×3 float32: ε at t = 0
    reconstruction: np.ndarray | None = None  # H×W×3 uint8 (with_dire)
    dire: np.ndarray | None = None  # H×W×3 uint8, ⌊127.5·|x − x_rec|⌋ (with_dire)
    unet_calls: int = 0
    timings_ms: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    # tiled models only: where the model looked and what each tile scored
    grid: TileGrid | None = None  # tile boxes in original-image pixels (after enlarging a tiny image)
    tile_p_fake: np.ndarray | None = None  # rows×cols calibrated p(fake) per tile
    tile_index: int | None = None  # the tile shown in ``image``/``eps``: the highest-scoring one
    preview: np.ndarray | None = None  # the whole image, longest side ≤ PREVIEW_SIZE, uint8
    low_confidence: bool = False
    warning: str | None = None  # why the score deserves less trust (e.g. the image is smaller than a tile)
    size: tuple[int, int] | None = None  # (width, height) of the decoded image, orientation applied
    provenance: Provenance | None = None  # what the file declares about its origin (never used for p_fake)

    def __post_init__(self) -> None:
        object.__setattr__(self, "timings_ms", MappingProxyType(dict(self.timings_ms)))
        for name in ("image", "eps", "reconstruction", "dire", "tile_p_fake", "preview"):
            array = getattr(self, name)
            if isinstance(array, np.ndarray) and array.flags.writeable:
                view = array.view()  # read-only view: the caller's own array is left as it was
                view.flags.writeable = False
                object.__setattr__(self, name, view)

    def __getstate__(self) -> dict:  # pickled into and out of DataLoader workers (scan)
        return {**self.__dict__, "timings_ms": dict(self.timings_ms)}

    def __setstate__(self, state: dict) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        self.__post_init__()

    @classmethod
    def failed(cls, source: str, error: str) -> DetectionResult:
        return cls(source=source, error=error, verdict="error")

    @property
    def ok(self) -> bool:
        return self.error is None

    def with_policy(self, policy: VerdictPolicy) -> DetectionResult:
        """This result judged by ``policy`` (label and verdict); an error stays an error."""
        if self.p_fake is None:
            return self
        return replace(self, label=policy.label(self.p_fake), verdict=policy.verdict(self.p_fake, self.low_confidence))

    def renamed(self, source: str) -> DetectionResult:
        """The same result under another name (e.g. the uploaded file's name instead of a temporary path)."""
        return replace(self, source=source)

    def to_dict(self) -> dict:
        """Scores, timings and errors (no pixel arrays): JSON-ready."""
        return {
            "source": self.source,
            "p_fake": self.p_fake,
            "label": self.label,
            "verdict": self.verdict,
            "logit": self.logit,
            "error": self.error,
            "unet_calls": self.unet_calls,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "low_confidence": self.low_confidence,
            "warning": self.warning,
            "image_size": None if self.size is None else list(self.size),
            "provenance": None if self.provenance is None else self.provenance.to_dict(),
            "tiles": None if self.grid is None else {
                "rows": self.grid.rows, "cols": self.grid.cols, "size": self.grid.tile,
                "boxes": [list(b) for b in self.grid.boxes],
                "p_fake": np.round(self.tile_p_fake, 5).tolist(), "shown": self.tile_index},
        }
