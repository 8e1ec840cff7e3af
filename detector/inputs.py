"""Input preparation: decode one upload, cut it into the model's inputs as its ``ModelConfig`` says
(tiles or a resized centre crop), and keep a small preview for the heat map. No model call here, so it
runs in DataLoader workers too."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .config import ModelConfig
from .preprocess import DetectorInputError, ImageInput, load_image, to_model_tensor
from .provenance import read_provenance
from .result import DetectionResult
from .tiling import TileGrid, image_to_tiles

#: Longest side of ``DetectionResult.preview`` (the whole image, for heat maps).
PREVIEW_SIZE = 512

#: A prepared input: its result so far (name, grid, preview, warnings, or the error) and the model inputs
#: (N×3×s×s in [−1, 1]; None for a bad input).
Prepared = tuple[DetectionResult, "torch.Tensor | None"]


def preview(image: Image.Image, size: int = PREVIEW_SIZE) -> np.ndarray:
    """The whole image, longest side at most ``size`` (for drawing the tile heat map on)."""
    scale = min(1.0, size / max(image.size))
    target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.resize(target, Image.BILINEAR, reducing_gap=3.0).convert("RGB"))  # no full-size copy


def model_inputs(image: Image.Image, config: ModelConfig) -> tuple[torch.Tensor, TileGrid | None]:
    """A decoded RGB image → N×3×s×s in [−1, 1] (N tiles, or one resized centre crop) and the tile grid."""
    if config.tiling is not None:
        return image_to_tiles(image, config.tiling.tile, config.tiling.max_tiles)
    return to_model_tensor(image, config.image_size)[None], None


def _name(item: ImageInput, index: int) -> str:
    return str(item) if isinstance(item, (str, Path)) else f"input #{index}"


def prepare_input(item: ImageInput, config: ModelConfig, index: int = 0, max_file_bytes: int | None = None,
                  provenance: bool = True) -> Prepared:
    """Decode one input and cut it into model inputs; with ``provenance``, also read what the file declares
    about its origin (from its original bytes). A bad input gets a result with ``error`` set and no tensor;
    never raises."""
    start = time.perf_counter()
    name = _name(item, index)
    try:
        loaded = load_image(item, max_bytes=max_file_bytes)
        tensor, grid = model_inputs(loaded.image, config)
    except DetectorInputError as exc:
        return DetectionResult.failed(name, str(exc)), None
    except Exception as exc:  # never let one odd file take the batch down
        return DetectionResult.failed(name, f"could not be processed ({type(exc).__name__}: {exc})"), None
    decode_ms = (time.perf_counter() - start) * 1e3
    width, height = loaded.image.size
    small = (grid is not None and grid.enlarged) or (grid is None and min(width, height) * 4 < config.image_size)
    warnings = []
    if small:
        warnings.append(f"the image is only {width}×{height} px, far below the model's {config.image_size}-px input: "
                        f"it was enlarged to be scored, so the score is unreliable (reported as unsure)")
    if loaded.frames > 1:
        warnings.append(f"an animated image ({loaded.frames} frames): only its first frame was scored")
    result = DetectionResult(
        source=name, grid=grid, preview=preview(loaded.image) if grid is not None else None, low_confidence=small,
        warning="; ".join(warnings) or None, timings_ms={"decode": decode_ms}, size=(width, height),
        provenance=read_provenance(item) if provenance else None)
    return result, tensor
