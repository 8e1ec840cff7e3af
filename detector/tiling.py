"""Native-resolution tiles: where a tiled model looks in an image, and how tile scores become one.

A model trained on native-resolution crops must see native-resolution pixels at inference: the image
is never shrunk; instead a deterministic grid of at most ``max_tiles`` tiles of ``tile``×``tile``
pixels is spread evenly over it (non-overlapping when the image is large, overlapping when it is
small). An image smaller than one tile is enlarged to one tile and its result flagged low-confidence.
Per-tile logits are combined by a rule chosen on validation (``AGGREGATIONS``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from .preprocess import to_signed


@dataclass(frozen=True)
class TilingConfig:
    """The ``"tiles"`` preprocessing mode of a model card."""

    tile: int = 64
    max_tiles: int = 16
    aggregate: str = "mean_logit"

    @classmethod
    def from_card(cls, entry: dict) -> TilingConfig:
        return cls(int(entry.get("tile", 64)), int(entry.get("max_tiles", 16)), str(entry.get("aggregate", "mean_logit")))

    def to_card(self) -> dict:
        return {"mode": "tiles", "tile": self.tile, "max_tiles": self.max_tiles, "aggregate": self.aggregate}


@dataclass(frozen=True)
class TileGrid:
    """Tile positions on the (possibly enlarged) image: ``boxes[i] = (left, top, right, bottom)``,
    row-major over ``rows``×``cols``; ``scale`` > 1 when a small image was enlarged to fit a tile."""

    width: int
    height: int
    tile: int
    rows: int
    cols: int
    boxes: tuple[tuple[int, int, int, int], ...]
    scale: float = 1.0

    @property
    def enlarged(self) -> bool:
        return self.scale > 1.0


def _positions(extent: int, tile: int, count: int) -> list[int]:
    """``count`` tile offsets spread evenly from 0 to ``extent - tile`` (integers, deterministic)."""
    if count == 1:
        return [(extent - tile) // 2]
    return [round(i * (extent - tile) / (count - 1)) for i in range(count)]


def grid_shape(width: int, height: int, tile: int, max_tiles: int) -> tuple[int, int]:
    """(rows, cols): as many non-overlapping tiles as fit, or, for large images, at most ``max_tiles``
    in a layout that follows the aspect ratio."""
    fit_cols, fit_rows = max(1, width // tile), max(1, height // tile)
    if fit_cols * fit_rows <= max_tiles:
        return fit_rows, fit_cols
    cols = min(fit_cols, max(1, round(math.sqrt(max_tiles * width / height))))
    rows = min(fit_rows, max(1, max_tiles // cols))
    cols = min(fit_cols, max(1, max_tiles // rows))  # use the budget the rows leave
    return rows, cols


def tile_grid(width: int, height: int, tile: int = 64, max_tiles: int = 16) -> TileGrid:
    """The deterministic tile grid for an image of ``width``×``height`` pixels."""
    if width < 1 or height < 1:
        raise ValueError("the image has no pixels")
    if max_tiles < 1:
        raise ValueError("max_tiles must be at least 1")
    scale = 1.0
    if min(width, height) < tile:
        scale = tile / min(width, height)
        width, height = max(tile, round(width * scale)), max(tile, round(height * scale))
    rows, cols = grid_shape(width, height, tile, max_tiles)
    boxes = tuple((x, y, x + tile, y + tile) for y in _positions(height, tile, rows) for x in _positions(width, tile, cols))
    return TileGrid(width, height, tile, rows, cols, boxes, scale)


def image_to_tiles(image: Image.Image, tile: int = 64, max_tiles: int = 16) -> tuple[torch.Tensor, TileGrid]:
    """RGB PIL image → (N×3×tile×tile float32 in [−1, 1], grid). Pixels are taken as they are; only an
    image smaller than a tile is enlarged (bilinear) to the tile size first."""
    grid = tile_grid(image.width, image.height, tile, max_tiles)
    if grid.enlarged:
        image = image.resize((grid.width, grid.height), Image.BILINEAR)
    tiles = torch.stack([TF.pil_to_tensor(image.crop(box)) for box in grid.boxes])  # no full-size copy
    return to_signed(tiles), grid


# ------------------------------------------------------------------------------------ aggregation
def _top_mean(fraction: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def top(logits: torch.Tensor) -> torch.Tensor:
        k = max(1, math.ceil(fraction * logits.numel()))
        return logits.topk(k).values.mean()

    return top


#: Rules that turn a 1-D tensor of tile logits into one image logit.
AGGREGATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mean_logit": lambda z: z.mean(),
    "median_logit": lambda z: z.median(),
    "mean_prob": lambda z: torch.logit(torch.sigmoid(z.double()).mean().clamp(1e-12, 1 - 1e-12)).to(z.dtype),
    "max_logit": lambda z: z.max(),
    "top25_mean": _top_mean(0.25),
    "top50_mean": _top_mean(0.5),
}


def aggregate(tile_logits: torch.Tensor | np.ndarray, rule: str = "mean_logit") -> float:
    """One image logit from its tiles' logits by ``rule`` (a key of ``AGGREGATIONS``)."""
    if rule not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {rule!r}; choose from {', '.join(AGGREGATIONS)}")
    logits = torch.as_tensor(tile_logits, dtype=torch.float32).flatten()
    if logits.numel() == 0:
        raise ValueError("no tile logits to aggregate")
    return float(AGGREGATIONS[rule](logits))
