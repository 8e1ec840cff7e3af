"""Evidence rendering: fixed scales, PNG-safe uint8 arrays, a matplotlib figure."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PIL import Image

from detector.result import DetectionResult
from detector.verdict import VerdictPolicy
from detector.visualize import (
    DIRE_DISPLAY_MAX,
    ScorePlot,
    dire_heat,
    eps_to_uint8,
    evidence_panels,
    evidence_sheet,
)


def test_eps_mapping_is_signed_and_fixed():
    eps = np.array([[[-3.0, 0.0, 3.0], [-10.0, 1.5, 10.0]]], dtype=np.float32)
    assert eps_to_uint8(eps).tolist() == [[[0, 128, 255], [0, 191, 255]]]


def test_dire_colour_scale_is_fixed_and_clipped():
    levels = np.array([[[0, 0, 0], [6, 6, 6], [DIRE_DISPLAY_MAX] * 3, [255, 255, 255]]], np.uint8)
    heat = dire_heat(levels).astype(int)
    assert heat.shape == (1, 4, 3) and heat.dtype == int and (heat[0, 3] == heat[0, 2]).all()  # clipped at the top
    assert heat[0, 0].sum() < heat[0, 1].sum() < heat[0, 2].sum()  # larger residual → brighter


def test_panels_state_their_scale(tmp_path):
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


def test_evidence_sheet_is_labelled_and_png_safe():
    rng = np.random.default_rng(1)
    result = DetectionResult(source="x.png", p_fake=0.2, label="real",
                             image=rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                             eps=rng.normal(size=(8, 8, 3)).astype(np.float32))
    one_row = evidence_sheet(result, panel_px=96, columns=2)
    assert one_row.dtype == np.uint8 and one_row.ndim == 3
    two_panels_wide = one_row.shape[1]
    result = replace(result, reconstruction=result.image, dire=np.zeros_like(result.image))
    grid = evidence_sheet(result, panel_px=96, columns=2)
    assert grid.shape[1] == two_panels_wide and grid.shape[0] > 2 * 96  # four panels wrap into two rows
    assert (one_row[:20] < 128).any()  # a title is drawn above the panels
    enlarged = np.repeat(np.repeat(result.image, 12, 0), 12, 1)  # nearest neighbour: pixels stay pixels
    assert any((one_row[y:y + 96, 8:104] == enlarged).all() for y in range(10, 40))


def test_score_plot_draws_each_request_on_a_clean_background():
    plot = ScorePlot({"edges": [0, 0.5, 1], "real": [3, 1], "fake": [1, 3]}, VerdictPolicy(0.5))
    empty = plot.render([])
    marked = plot.render([("a.png", 0.9), ("bad.png", None)])
    assert empty.shape == marked.shape and empty.shape[-1] == 4 and empty.dtype.name == "uint8"
    assert (marked != empty).any(axis=-1).sum() > 50  # the marker and its name
    assert np.array_equal(plot.render([]), empty)  # no marker left over from the previous request
