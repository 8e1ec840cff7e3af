"""What a demo or a report adds around ``Detector.detect``: robustness re-checks, measured pipeline
costs and a JSON report, all judged by the request's ``VerdictPolicy``. No UI code.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Sequence

import torch

from .perturb import apply
from .pipeline import DetectionResult, Detector
from .preprocess import ImageInput, load_image
from .verdict import VerdictPolicy

#: Re-encodings a score should survive (names from ``detector.perturb.PERTURBATIONS``).
ROBUSTNESS_CHECKS = ("jpeg_q75", "rescale_0.5x")


def robustness(detector: Detector, items: Sequence[ImageInput], results: Sequence[DetectionResult],
               policy: VerdictPolicy | None = None) -> list[dict]:
    """p_fake and verdict of each good input after each of ``ROBUSTNESS_CHECKS`` (JPEG q75, 0.5×
    downscale), and whether its label flips side of ``policy``'s threshold (the detector's by default:
    pass the one ``detect`` used)."""
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


def measure_costs(detector: Detector, repeats: int = 3) -> dict:
    """Measured ms per UNet call and per student pass on this hardware, at the detector's input size
    (one tile for a tiled model), batch 1, and the implied per-image cost of DIRE (2·steps calls on
    one input), DistilDIRE (one call per input) and image-only (no call). A tiled model scores up to
    ``max_tiles`` inputs per image; the figures count that many."""
    size = detector.image_size
    inputs = detector.tiling.max_tiles if detector.tiling is not None else 1
    x = torch.zeros(1, 3, size, size, device=detector.device)
    timings = {}
    with torch.inference_mode():
        if detector.unet is not None:
            t = torch.zeros(1, dtype=torch.long, device=detector.device)
            timings["unet_call_ms"] = _median_ms(lambda: detector.eps_fn(x, t), detector, repeats)
        channels = detector.student.arch.in_channels
        x_student = torch.zeros(1, channels, size, size, device=detector.device, dtype=detector.student_dtype)
        timings["student_ms"] = _median_ms(lambda: detector.student(x_student), detector, repeats)
    unet_ms = timings.get("unet_call_ms")
    student_ms = inputs * timings["student_ms"]
    calls = 2 * detector.ddim.steps
    return {
        "device": str(detector.device),
        "image_size": size,
        "inputs_per_image": inputs,
        **{k: round(v, 2) for k, v in timings.items()},
        "pipelines": {
            f"DIRE (DDIM-{detector.ddim.steps} inversion + reconstruction)": {
                "unet_calls": calls, "ms": round(calls * unet_ms + timings["student_ms"], 1) if unet_ms else None},
            "DistilDIRE (ε at t=0)": {"unet_calls": inputs,
                                       "ms": round(inputs * unet_ms + student_ms, 1) if unet_ms else None},
            "image-only student": {"unet_calls": 0, "ms": round(student_ms, 1)},
        },
    }


def _median_ms(fn, detector: Detector, repeats: int) -> float:
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        detector._sync()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def sha256_of(item: ImageInput) -> str | None:
    if isinstance(item, (bytes, bytearray)):
        return hashlib.sha256(item).hexdigest()
    try:
        with open(item, "rb") as fh:  # type: ignore[arg-type]
            return hashlib.sha256(fh.read()).hexdigest()
    except (TypeError, OSError):
        return None


def build_report(detector: Detector, items: Sequence[ImageInput], results: Sequence[DetectionResult],
                 names: Sequence[str] | None = None, robust: Sequence[dict] | None = None,
                 policy: VerdictPolicy | None = None) -> dict:
    """A JSON-ready report: model (name, weights hash, preprocessing), the verdict policy ``detect`` used
    (the detector's by default), and per file its score, label and verdict (as ``detect`` set them),
    timings, input hash and, when computed, the robustness readout."""
    files = []
    for i, (item, result) in enumerate(zip(items, results)):
        entry = result.to_dict()
        entry["file"] = names[i] if names else result.source
        entry["sha256"] = sha256_of(item)
        if robust and robust[i]:
            entry["robustness"] = robust[i]
        files.append(entry)
    return {"model": detector.describe(), "policy": (policy or detector.policy).to_dict(), "files": files}
