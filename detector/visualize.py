"""Evidence as pictures (no UI code): ε and DIRE maps as uint8 RGB, heat overlays, a matplotlib figure.

Scales are fixed, not per image, so maps of different images compare honestly:
ε is shown signed with ±``EPS_RANGE`` mapped to 0…255 (128 = zero); DIRE is shown multiplied by
``DIRE_GAIN`` (its raw values are a few levels out of 255).
"""

from __future__ import annotations

import numpy as np

EPS_RANGE = 3.0
DIRE_GAIN = 8.0


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
