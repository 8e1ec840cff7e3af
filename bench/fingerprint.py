"""Every number the detector produces for a fixed set of inputs, as JSON: run it before and after a
refactor and diff the two files (``cmp``) to show that scores did not move by a single bit.

    python -m bench.fingerprint > before.json   # ... refactor ...
    python -m bench.fingerprint > after.json && cmp before.json after.json

Inputs: the shipped examples, plus synthetic images made here (sizes from 8 px to 1024×768, so every
tiling path — enlarged, overlapping, sub-sampled — is taken), scored by both bundled models, with and
without DIRE for two of them. Floats are written with ``float.hex`` (exact), tensors by SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def synthetic(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 7 + yy / 11)], axis=-1) * 200 + 20
    pixels = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _digest(array) -> str | None:
    return None if array is None else hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def _hex(value: float | None) -> str | None:
    return None if value is None else float(value).hex()


def fingerprint() -> dict:
    from detector import Detector

    examples = sorted(str(p) for p in (ROOT / "examples").iterdir() if p.suffix in (".jpg", ".webp", ".png"))
    made = [synthetic(w, h, s) for s, (w, h) in enumerate([(8, 8), (40, 90), (64, 64), (200, 150), (1024, 768)])]
    inputs = examples + made + [b"not an image"]
    out = {}
    for name in ("bundled", "bundled-fast"):
        detector = Detector.from_pretrained(name, device="cpu")
        runs = {"plain": detector.detect(inputs)}
        if detector.unet is not None:
            runs["dire"] = detector.detect([made[1], made[3]], with_dire=True)
        for run, results in runs.items():
            out[f"{name}/{run}"] = [
                {"p_fake": _hex(r.p_fake), "logit": _hex(r.logit), "label": r.label, "verdict": r.verdict,
                 "error": r.error, "unet_calls": r.unet_calls, "low_confidence": r.low_confidence,
                 "warning": r.warning, "tile_index": r.tile_index, "tile_p_fake": _digest(r.tile_p_fake),
                 "image": _digest(r.image), "eps": _digest(r.eps), "dire": _digest(r.dire),
                 "reconstruction": _digest(r.reconstruction), "preview": _digest(r.preview),
                 "grid": None if r.grid is None else [r.grid.rows, r.grid.cols, list(map(list, r.grid.boxes))]}
                for r in results]
    return out


if __name__ == "__main__":
    print(json.dumps(fingerprint(), indent=1))
