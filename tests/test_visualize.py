"""Evidence rendering: fixed scales, PNG-safe uint8 arrays, a matplotlib figure."""

from __future__ import annotations

import numpy as np
from PIL import Image

from detector.pipeline import DetectionResult
from detector.visualize import (DIRE_DISPLAY_MAX, dire_heat, eps_to_uint8, evidence_figure, evidence_panels, evidence_sheet,
                                heat_overlay, magnitude)


def test_eps_mapping_is_signed_and_fixed():
    eps = np.array([[[-3.0, 0.0, 3.0], [-10.0, 1.5, 10.0]]], dtype=np.float32)
    assert eps_to_uint8(eps).tolist() == [[[0, 128, 255], [0, 191, 255]]]


def test_dire_gain_and_overlay():
    levels = np.array([[[0, 0, 0], [6, 6, 6], [DIRE_DISPLAY_MAX] * 3, [255, 255, 255]]], np.uint8)
    heat = dire_heat(levels).astype(int)
    assert heat.shape == (1, 4, 3) and heat.dtype == int and (heat[0, 3] == heat[0, 2]).all()  # clipped at the top
    assert heat[0, 0].sum() < heat[0, 1].sum() < heat[0, 2].sum()  # larger residual → brighter
    image = np.zeros((4, 4, 3), np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 1.0
    out = heat_overlay(image, heat, alpha=1.0, vmax=1.0)
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    assert out[0, 0].sum() > out[3, 3].sum()
    assert magnitude(np.ones((2, 2, 3)) * 2).tolist() == [[2.0, 2.0], [2.0, 2.0]]


def test_panels_and_figure(tmp_path):
    rng = np.random.default_rng(0)
    result = DetectionResult(source="x.png", p_fake=0.9, label="fake",
                             image=rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                             eps=rng.normal(size=(8, 8, 3)).astype(np.float32),
                             reconstruction=rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                             dire=rng.integers(0, 20, (8, 8, 3), dtype=np.uint8))
    panels = evidence_panels(result)
    assert [t.split(" ")[0] for t, _, _ in panels] == ["input:", "ε", "DDIM", "DIRE"]
    assert all(note for _, note, _ in panels)  # every panel states its scale
    for _, _, img in panels:
        Image.fromarray(img).save(tmp_path / "p.png")  # PNG-safe
    fig = evidence_figure(result)
    assert len(fig.axes) == 4 and "fake" in fig._suptitle.get_text()
    assert evidence_figure(result, title="custom")._suptitle.get_text() == "custom"
    fig.savefig(tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_evidence_sheet_is_labelled_and_png_safe():
    rng = np.random.default_rng(1)
    result = DetectionResult(source="x.png", p_fake=0.2, label="real",
                             image=rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                             eps=rng.normal(size=(8, 8, 3)).astype(np.float32))
    one_row = evidence_sheet(result, panel_px=96, columns=2)
    assert one_row.dtype == np.uint8 and one_row.ndim == 3
    two_panels_wide = one_row.shape[1]
    result.reconstruction, result.dire = result.image, np.zeros_like(result.image)
    grid = evidence_sheet(result, panel_px=96, columns=2)
    assert grid.shape[1] == two_panels_wide and grid.shape[0] > 2 * 96  # four panels wrap into two rows
    assert (one_row[:20] < 128).any()  # a title is drawn above the panels
    enlarged = np.repeat(np.repeat(result.image, 12, 0), 12, 1)  # nearest neighbour: pixels stay pixels
    assert any((one_row[y:y + 96, 8:104] == enlarged).all() for y in range(10, 40))
