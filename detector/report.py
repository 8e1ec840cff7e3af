"""What a report adds around ``Detector.detect``: robustness re-checks, the JSON report and the rows of
the results table the CLI and the app both print, all judged by the request's ``VerdictPolicy``."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timezone

from .perturb import apply
from .pipeline import Detector
from .preprocess import ImageInput, load_image
from .result import DetectionResult
from .verdict import VerdictPolicy

#: Re-encodings a score should survive (names from ``detector.perturb.PERTURBATIONS``).
ROBUSTNESS_CHECKS = ("jpeg_q75", "rescale_0.5x")
#: Columns of the results table (CLI and app).
TABLE_HEADERS = ["file", "verdict", "p_fake", "UNet calls", "ms", "notes", "provenance (declared by the file)"]
#: How a verdict is shown to people. The low side says what the model can say — it found no sign of
#: generation — not that the image is a photograph (it misses many generated images: see the card).
VERDICT_WORDS = {"fake": "FAKE", "real": "NO SIGN FOUND", "unsure": "UNSURE", "error": "ERROR"}


def robustness(detector: Detector, items: Sequence[ImageInput], results: Sequence[DetectionResult],
               policy: VerdictPolicy | None = None) -> list[dict]:
    """p_fake and verdict of each good input after each of ``ROBUSTNESS_CHECKS`` (JPEG q75, 0.5×
    downscale), and whether its label flips side of ``policy``'s threshold (pass the one ``detect`` used)."""
    policy = policy or detector.policy
    report: list[dict] = []
    variants: list[ImageInput] = []
    owners: list[tuple[int, str]] = []
    for index, (item, result) in enumerate(zip(items, results)):
        report.append({})
        if not result.ok:
            continue
        image = load_image(item).image
        for name in ROBUSTNESS_CHECKS:
            variants.append(apply(image, name))
            owners.append((index, name))
    for (index, name), perturbed in zip(owners, detector.detect(variants, policy=policy) if variants else []):
        report[index][name] = {"p_fake": perturbed.p_fake, "verdict": perturbed.verdict,
                               "flips": policy.flips(results[index].p_fake, perturbed.p_fake)}
    return report


def sha256_of(item: ImageInput) -> str | None:
    if isinstance(item, (bytes, bytearray)):
        return hashlib.sha256(item).hexdigest()
    try:
        with open(item, "rb") as fh:  # type: ignore[arg-type]
            return hashlib.sha256(fh.read()).hexdigest()
    except (TypeError, OSError):
        return None


def build_report(detector: Detector, items: Sequence[ImageInput], results: Sequence[DetectionResult],
                 robust: Sequence[dict] | None = None, policy: VerdictPolicy | None = None) -> dict:
    """A JSON-ready report: when, the model (its config, weights hash, device), the verdict policy ``detect``
    used (the model card's by default), and per file its score, label and verdict (as ``detect`` set them),
    timings, input hash and, when computed, the robustness readout."""
    from . import __version__

    files = []
    for i, (item, result) in enumerate(zip(items, results)):
        entry = {"file": result.source, **result.to_dict(), "sha256": sha256_of(item)}
        if robust and robust[i]:
            entry["robustness"] = robust[i]
        files.append(entry)
    return {"created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "detector_version": __version__,
            "policy": (policy or detector.policy).to_dict(), "model": detector.describe(), "files": files}


def table_row(entry: dict) -> list:
    """One report entry as a results-table row (``TABLE_HEADERS``): numbers stay numbers."""
    scored = entry["p_fake"] is not None
    notes = [entry["error"] or entry.get("warning") or ""]
    provenance = entry.get("provenance") or {}
    disagreement = disagreement_note(entry["verdict"], provenance)
    if disagreement:
        notes.append(disagreement)
    if entry.get("robustness"):
        flipped = [k for k, v in entry["robustness"].items() if v["flips"]]
        notes.append("verdict flips: " + ", ".join(flipped) if flipped else "stable")
    return [entry.get("file", entry["source"]), VERDICT_WORDS[entry["verdict"] or "error"],
            entry["p_fake"], entry["unet_calls"], entry["timings_ms"].get("total", 0.0) if scored else None,
            "; ".join(n for n in notes if n), provenance.get("summary", "")]


def disagreement_note(verdict: str | None, provenance: dict) -> str | None:
    """A plain sentence where what the file declares and what the pixels show disagree, else None."""
    if provenance.get("declares_ai") and verdict in ("real", "unsure"):
        return ("the file declares AI generation, but the pixels show " +
                ("no sign of it" if verdict == "real" else "no clear sign of it") + " at this threshold")
    c2pa = provenance.get("c2pa") or {}
    if verdict == "fake" and c2pa.get("digital_source_type") == "digitalCapture" and "valid" in str(c2pa.get("validation")):
        return "a signed C2PA manifest declares a camera capture, but the pixels look generated to this model"
    return None


def format_table(entries: Sequence[dict]) -> str:
    """Report entries as an aligned plain-text table (the CLI's)."""
    cells = [[str(row[0]), row[1], "-" if row[2] is None else f"{row[2]:.4f}", str(row[3]),
              "-" if row[4] is None else f"{row[4]:.0f}", row[5], row[6]] for row in map(table_row, entries)]
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h) for i, h in enumerate(TABLE_HEADERS)]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()

    return "\n".join([line(TABLE_HEADERS), line(["-" * w for w in widths]), *map(line, cells)])
