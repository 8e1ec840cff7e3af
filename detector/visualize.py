"""Evidence as pictures (no UI code): ε and DIRE maps as uint8 RGB, the labelled evidence sheet, the tile
heat map and the score plot.

Scales are fixed, not per image, so maps of different images compare honestly:
ε is shown signed with ±``EPS_RANGE`` mapped to 0…255 (128 = zero); DIRE (|x − x̂| in 8-bit levels,
mostly a few levels) is shown as its per-pixel mean over RGB on a colour scale from 0 to
``DIRE_DISPLAY_MAX`` levels, so a reconstruction that differs more reads brighter, not noisier.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

EPS_RANGE = 3.0
DIRE_DISPLAY_MAX = 40.0  # 8-bit levels of |x − x̂| at the top of the DIRE colour scale (≈ p99 on the bundled model)
DIRE_CMAP = "inferno"
HEATMAP_CMAP = "RdYlBu_r"  # p(fake) 0 → blue, 0.5 → pale yellow, 1 → red; the same fixed scale for every image


def eps_to_uint8(eps: np.ndarray, value_range: float = EPS_RANGE) -> np.ndarray:
    """H×W×3 float ε → H×W×3 uint8, signed: 0 ↦ 128, ±range ↦ 0/255."""
    scaled = (np.asarray(eps, dtype=np.float32) / value_range + 1.0) * 127.5
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def dire_heat(dire: np.ndarray, vmax: float = DIRE_DISPLAY_MAX, cmap: str = DIRE_CMAP) -> np.ndarray:
    """Raw uint8 DIRE (⌊127.5·|Δ|⌋ per channel) → H×W×3 uint8: its mean over RGB on a fixed colour
    scale, 0 → black, ``vmax`` levels or more → the brightest colour."""
    from matplotlib import colormaps

    level = np.asarray(dire, dtype=np.float32).mean(axis=-1) / vmax
    return np.rint(colormaps[cmap](np.clip(level, 0, 1))[..., :3] * 255).astype(np.uint8)


def evidence_panels(result) -> list[tuple[str, str, np.ndarray]]:
    """(title, scale note, uint8 image) per panel of a ``DetectionResult``: the model's input, ε, and the
    reconstruction and DIRE map when computed."""
    size = f"{result.image.shape[1]}×{result.image.shape[0]} px"
    how = "the tile with the highest p(fake)" if result.grid is not None else "the pixels as the model read them"
    panels = [(f"input: {size}", how, result.image)]
    if result.eps is not None:
        panels.append(("ε at t = 0 (1 UNet call)", f"grey = 0, ±{EPS_RANGE:g} → black / white", eps_to_uint8(result.eps)))
    if result.reconstruction is not None:
        panels.append(("DDIM reconstruction x̂", "DDIM inversion + reconstruction", result.reconstruction))
    if result.dire is not None:
        panels.append(("DIRE |x − x̂|", f"RGB mean, 0 → {DIRE_DISPLAY_MAX:g}/255 ({DIRE_CMAP})", dire_heat(result.dire)))
    return panels


def evidence_sheet(result, panel_px: int = 240, columns: int = 2) -> np.ndarray:
    """The evidence panels as one labelled uint8 RGB sheet: each panel enlarged (nearest neighbour, so
    pixels stay pixels) to ``panel_px``, its title above and its colour scale below, ``columns`` per
    row. Cheap to build and to serve as PNG."""
    from PIL import Image, ImageDraw

    panels = evidence_panels(result)
    columns = max(1, min(columns, len(panels)))
    rows = -(-len(panels) // columns)
    title_font, note_font = _font(14), _font(12)
    pad, head, foot = 8, 22, 20
    cell_w, cell_h = panel_px + 2 * pad, head + panel_px + foot + pad
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (title, note, pixels) in enumerate(panels):
        row, col = divmod(index, columns)
        x, y = col * cell_w + pad, row * cell_h
        draw.text((x, y + 4), title, fill=(20, 20, 20), font=title_font)
        sheet.paste(Image.fromarray(pixels).resize((panel_px, panel_px), Image.NEAREST), (x, y + head))
        draw.text((x, y + head + panel_px + 3), note, fill=(90, 90, 90), font=note_font)
    return np.asarray(sheet)


def _font(size: int):
    """DejaVu Sans (shipped with matplotlib: it has ε, ×, ±, …) at ``size`` px; Pillow's default otherwise."""
    from matplotlib import font_manager
    from PIL import ImageFont

    try:
        return ImageFont.truetype(font_manager.findfont("DejaVu Sans", fallback_to_default=False), size)
    except (OSError, ValueError):
        return ImageFont.load_default(size=size)


def _colour(value: float, cmap: str = HEATMAP_CMAP) -> tuple[int, int, int]:
    from matplotlib import colormaps

    r, g, b, _ = colormaps[cmap](float(np.clip(value, 0.0, 1.0)))
    return round(r * 255), round(g * 255), round(b * 255)


def _cell_edges(starts: list[int], tile: int, extent: int) -> list[int]:
    """Boundaries of the cells a row (or column) of tiles stands for: midway between tile centres."""
    centres = [start + tile / 2 for start in starts]
    return [0] + [round((a + b) / 2) for a, b in pairwise(centres)] + [extent]


#: A heat map is drawn at least this wide (small images are enlarged, pixels kept square) so tiles and
#: the legend stay readable.
HEATMAP_MIN_WIDTH = 320


def tile_heatmap(result, alpha: float = 0.55, legend: bool = True, threshold: float | None = None) -> np.ndarray:
    """The whole image (``result.preview``) under the tile scores: each grid cell tinted by its tile's
    p(fake) on a fixed 0…1 colour scale (blue = low, red = high; one tile alone is a weak signal), the
    pixels the model actually read drawn stronger and outlined, the tile shown as evidence outlined in
    black, and a legend strip below (the threshold marked). A small image is enlarged (nearest
    neighbour) to at least ``HEATMAP_MIN_WIDTH`` px wide. uint8 H×W×3; needs a tiled model's result."""
    from PIL import Image, ImageDraw

    if result.grid is None or result.tile_p_fake is None or result.preview is None:
        raise ValueError("tile heat maps need a result from a tiled model (its card's preprocessing mode is 'tiles')")
    grid = result.grid
    base = Image.fromarray(result.preview).convert("RGBA")
    if base.width < HEATMAP_MIN_WIDTH:
        factor = max(1, min(-(-HEATMAP_MIN_WIDTH // base.width), 1600 // max(base.size)))
        base = base.resize((base.width * factor, base.height * factor), Image.NEAREST)
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
    font = _font(12)
    bar_h, pad = 10, 6
    canvas = Image.new("RGB", (image.width, image.height + bar_h + 22 + pad), "white")
    canvas.paste(image, (0, 0))
    draw = ImageDraw.Draw(canvas)
    x0, x1, y0 = pad, image.width - pad, image.height + pad
    from matplotlib import colormaps

    ramp = colormaps[HEATMAP_CMAP](np.linspace(0.0, 1.0, max(1, x1 - x0)))[None, :, :3] * 255.0  # one call, not one per x
    canvas.paste(Image.fromarray(np.repeat(np.rint(ramp).astype(np.uint8), bar_h + 1, axis=0)), (x0, y0))
    if threshold is not None:
        tx = x0 + threshold * (x1 - x0)
        draw.line((tx, y0 - 2, tx, y0 + bar_h + 2), fill=(0, 0, 0), width=2)
    wide = image.width >= 260
    draw.text((x0, y0 + bar_h + 2), "tile p(fake) 0" if wide else "0", fill=(40, 40, 40), font=font)
    draw.text((x1, y0 + bar_h + 2), "1", fill=(40, 40, 40), font=font, anchor="ra")
    return np.asarray(canvas)


def _short(name: str, width: int = 26) -> str:
    """A file name shortened in the middle, so the distinguishing end survives."""
    return name if len(name) <= width else f"{name[: width // 2 - 1]}…{name[-(width // 2):]}"


class ScorePlot:
    """A batch's scores against the threshold, over the model card's reference histograms.

    The axes, histograms, threshold, unsure band and legend are drawn once per (model, policy); a request
    only blits its markers onto a copy of that background (~5 ms instead of ~120 ms for a fresh figure).
    Transparent background and mid-grey text: reads in light and dark mode."""

    INK = "#7a7a7a"

    def __init__(self, reference: dict | None, policy):
        """``reference``: {"edges": bin edges, "real": counts, "fake": counts} (a card's validation
        histograms of this model's scores) or None."""
        import threading

        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.6, 3.0), dpi=100, layout="constrained")  # small enough to stay legible on a phone
        fig.patch.set_alpha(0.0)
        ax = self.ax = fig.subplots()
        ax.set_facecolor("none")
        if reference:
            edges = np.array(reference["edges"])
            centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
            colours = {"real": "#4c9f70", "fake": "#d1495b"}
            names = {"real": "photos", "fake": "generated"}
            for kind in ("real", "fake"):
                counts = np.array(reference.get(kind, []), dtype=float)
                if counts.sum():
                    ax.bar(centres, counts / counts.sum(), width=width, alpha=0.4, color=colours[kind],
                           label=f"{names[kind]} (validation)")
        ax.axvspan(*policy.band, color="grey", alpha=0.15, label="unsure band")
        ax.axvline(policy.threshold, color=self.INK, lw=1.5, label=f"threshold {policy.threshold:.2f}")
        self.top = ax.get_ylim()[1] if reference else 1.0
        ax.set_ylim(0, self.top)
        ax.set_xlim(0, 1)
        ax.set_yticks([])
        ax.set_xlabel("p(fake)", color=self.INK, fontsize=11)
        ax.set_title("Scores of this batch", color=self.INK, fontsize=12)
        ax.tick_params(colors=self.INK, labelsize=10)
        for spine in ax.spines.values():
            spine.set_color(self.INK)
        legend = fig.legend(fontsize=10, loc="outside lower center", ncols=2, frameon=False)
        for text in legend.get_texts():
            text.set_color(self.INK)
        self.canvas = FigureCanvasAgg(fig)
        self.canvas.draw()
        fig.set_layout_engine("none")  # positions frozen: the markers land where the background expects them
        self.background = self.canvas.copy_from_bbox(fig.bbox)
        self.lock = threading.Lock()  # one figure, many request threads

    def render(self, scores: list[tuple[str, float | None]]) -> np.ndarray:
        """H×W×4 uint8: the background with a marker and the (shortened) name per (name, p_fake) scored."""
        scored = [(name, p) for name, p in scores if p is not None]
        with self.lock:
            self.canvas.restore_region(self.background)
            artists = []
            for i, (name, p) in enumerate(scored):
                y = self.top * (0.92 - 0.8 * i / max(1, len(scored)))
                artists += self.ax.plot(p, y, "v", color="#1f6fd1", ms=8)
                artists.append(self.ax.annotate(
                    _short(name), (p, y), fontsize=10, color=self.INK, xytext=(5, 2),
                    textcoords="offset points", ha="right" if p > 0.7 else "left", annotation_clip=False))
            for artist in artists:
                self.ax.draw_artist(artist)
            pixels = np.asarray(self.canvas.buffer_rgba()).copy()
            for artist in artists:
                artist.remove()
        return pixels
