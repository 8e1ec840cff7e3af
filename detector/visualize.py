"""Evidence as pictures (no UI code): ε and DIRE maps as uint8 RGB, heat overlays, the tile heat map,
a matplotlib figure.

Scales are fixed, not per image, so maps of different images compare honestly:
ε is shown signed with ±``EPS_RANGE`` mapped to 0…255 (128 = zero); DIRE is shown multiplied by
``DIRE_GAIN`` (its raw values are a few levels out of 255).
"""

from __future__ import annotations

import numpy as np

EPS_RANGE = 3.0
DIRE_GAIN = 8.0
HEATMAP_CMAP = "RdYlBu_r"  # p(fake) 0 → blue, 0.5 → pale yellow, 1 → red; the same fixed scale for every image


def eps_to_uint8(eps: np.ndarray, value_range: float = EPS_RANGE) -> np.ndarray:
    """H×W×3 float ε → H×W×3 uint8, signed: 0 ↦ 128, ±range ↦ 0/255."""
    scaled = (np.asarray(eps, dtype=np.float32) / value_range + 1.0) * 127.5
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def dire_for_display(dire: np.ndarray, gain: float = DIRE_GAIN) -> np.ndarray:
    """Raw uint8 DIRE (⌊127.5·|Δ|⌋) brightened by a fixed gain for viewing."""
    return np.clip(np.asarray(dire, dtype=np.float32) * gain, 0, 255).astype(np.uint8)


def magnitude(map_rgb: np.ndarray) -> np.ndarray:
    """Per-pixel magnitude of a 3-channel map, H×W float32."""
    return np.sqrt(np.mean(np.square(np.asarray(map_rgb, dtype=np.float32)), axis=-1))


def heat_overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, vmax: float | None = None,
                 cmap: str = "inferno") -> np.ndarray:
    """Blend a colour-mapped H×W ``heat`` over an H×W×3 uint8 image; ``vmax`` fixes the colour scale."""
    from matplotlib import colormaps

    heat = np.asarray(heat, dtype=np.float32)
    top = float(vmax) if vmax is not None else float(np.percentile(heat, 99.5)) or 1.0
    colours = colormaps[cmap](np.clip(heat / top, 0, 1))[..., :3] * 255.0
    blended = (1 - alpha) * np.asarray(image, dtype=np.float32) + alpha * colours
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def evidence_panels(result) -> list[tuple[str, np.ndarray]]:
    """(title, uint8 image) pairs for a ``DetectionResult``: image, ε, and reconstruction/DIRE if present."""
    panels = [("input (model crop)", result.image)]
    if result.eps is not None:
        panels.append((f"ε at t=0 (±{EPS_RANGE:g})", eps_to_uint8(result.eps)))
    if result.reconstruction is not None:
        panels.append(("DDIM reconstruction", result.reconstruction))
    if result.dire is not None:
        panels.append((f"DIRE ×{DIRE_GAIN:g}", dire_for_display(result.dire)))
    return panels


def evidence_strip(result, scale: int = 3, gap: int = 6) -> np.ndarray:
    """The evidence panels side by side as one uint8 RGB array (nearest-neighbour ×``scale``, white
    gaps): cheap to build and to serve as PNG; panel order as in ``evidence_panels``."""
    panels = [np.repeat(np.repeat(img, scale, axis=0), scale, axis=1) for _, img in evidence_panels(result)]
    height = max(p.shape[0] for p in panels)
    spacer = np.full((height, gap, 3), 255, np.uint8)
    row = []
    for i, panel in enumerate(panels):
        row += ([spacer] if i else []) + [panel]
    return np.concatenate(row, axis=1)


def evidence_figure(result, dpi: int = 100, title: str | None = None):
    """A matplotlib Figure with the evidence panels side by side; ``title`` defaults to the verdict."""
    from matplotlib.figure import Figure

    panels = evidence_panels(result)
    fig = Figure(figsize=(2.4 * len(panels), 2.8), dpi=dpi, layout="constrained")
    for ax, (panel_title, img) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(panel_title, fontsize=9)
        ax.axis("off")
    if title is None and result.ok:
        title = f"{result.source}: {result.label} (p_fake = {result.p_fake:.3f})"
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _colour(value: float, cmap: str = HEATMAP_CMAP) -> tuple[int, int, int]:
    from matplotlib import colormaps

    r, g, b, _ = colormaps[cmap](float(np.clip(value, 0.0, 1.0)))
    return round(r * 255), round(g * 255), round(b * 255)


def _cell_edges(starts: list[int], tile: int, extent: int) -> list[int]:
    """Boundaries of the cells a row (or column) of tiles stands for: midway between tile centres."""
    centres = [start + tile / 2 for start in starts]
    return [0] + [round((a + b) / 2) for a, b in zip(centres, centres[1:])] + [extent]


def tile_heatmap(result, alpha: float = 0.55, legend: bool = True, threshold: float | None = None) -> np.ndarray:
    """The whole image (``result.preview``) under the tile scores: each grid cell tinted by its tile's
    p(fake) on a fixed 0…1 colour scale (blue = photo-like, red = generation traces), the pixels the
    model actually read drawn stronger and outlined, the tile shown as evidence outlined in black, and
    a legend strip below (the threshold marked). uint8 H×W×3; needs a tiled model's result."""
    from PIL import Image, ImageDraw, ImageFont

    if result.grid is None or result.tile_p_fake is None or result.preview is None:
        raise ValueError("tile heat maps need a result from a tiled model (its card's preprocessing mode is 'tiles')")
    grid = result.grid
    base = Image.fromarray(result.preview).convert("RGBA")
    scale = base.width / grid.width
    lefts = sorted({box[0] for box in grid.boxes})
    tops = sorted({box[1] for box in grid.boxes})
    xs, ys = _cell_edges(lefts, grid.tile, grid.width), _cell_edges(tops, grid.tile, grid.height)
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for index, (box, p) in enumerate(zip(grid.boxes, result.tile_p_fake.ravel())):
        row, col = divmod(index, grid.cols)
        colour = _colour(p)
        cell = (xs[col] * scale, ys[row] * scale, xs[col + 1] * scale - 1, ys[row + 1] * scale - 1)
        draw.rectangle(cell, fill=(*colour, round(255 * alpha * 0.5)))
        left, top, right, bottom = (round(v * scale) for v in box)
        draw.rectangle((left, top, right - 1, bottom - 1), fill=(*colour, round(255 * alpha)), outline=(255, 255, 255, 220))
    if result.tile_index is not None:
        left, top, right, bottom = (round(v * scale) for v in grid.boxes[result.tile_index])
        draw.rectangle((left - 2, top - 2, right + 1, bottom + 1), outline=(0, 0, 0, 255), width=2)
    image = Image.alpha_composite(base, overlay).convert("RGB")
    if not legend:
        return np.asarray(image)
    font = ImageFont.load_default(size=12)
    bar_h, pad = 10, 6
    canvas = Image.new("RGB", (image.width, image.height + bar_h + 22 + pad), "white")
    canvas.paste(image, (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0, x1, y0 = pad, image.width - pad, image.height + pad
    for x in range(x0, x1):
        draw.line((x, y0, x, y0 + bar_h), fill=_colour((x - x0) / max(1, x1 - x0 - 1)))
    if threshold is not None:
        tx = x0 + threshold * (x1 - x0)
        draw.line((tx, y0 - 2, tx, y0 + bar_h + 2), fill=(0, 0, 0), width=2)
    draw.text((x0, y0 + bar_h + 2), "p(fake) 0: photo-like", fill=(40, 40, 40), font=font)
    draw.text((x1, y0 + bar_h + 2), "1: generated", fill=(40, 40, 40), font=font, anchor="ra")
    return np.asarray(canvas)
