"""Evidence rendering: fixed scales, PNG-safe uint8 arrays, a matplotlib figure."""

from __future__ import annotations

import numpy as np
from PIL import Image

from detector.pipeline import DetectionResult
from detector.visualize import dire_for_display, eps_to_uint8, evidence_figure, evidence_panels, heat_overlay, magnitude


def test_eps_mapping_is_signed_and_fixed():
    eps = np.array([[[-3.0, 0.0, 3.0], [-10.0, 1.5, 10.0]]], dtype=np.float32)
    assert eps_to_uint8(eps).tolist() == [[[0, 128, 255], [0, 191, 255]]]


def test_dire_gain_and_overlay():
    assert dire_for_display(np.array([0, 10, 40], np.uint8)).tolist() == [0, 80, 255]
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
    assert [t.split(" ")[0] for t, _ in panels] == ["input", "ε", "DDIM", "DIRE"]
    for _, img in panels:
        Image.fromarray(img).save(tmp_path / "p.png")  # PNG-safe
    fig = evidence_figure(result)
    assert len(fig.axes) == 4 and "fake" in fig._suptitle.get_text()
    assert evidence_figure(result, title="custom")._suptitle.get_text() == "custom"
    fig.savefig(tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 1000


def test_evidence_strip_is_one_png_safe_row():
    from detector.visualize import evidence_strip

    rng = np.random.default_rng(1)
    result = DetectionResult(source="x.png", p_fake=0.2, label="real",
                             image=rng.integers(0, 255, (8, 8, 3), dtype=np.uint8),
                             eps=rng.normal(size=(8, 8, 3)).astype(np.float32))
    strip = evidence_strip(result, scale=3, gap=6)
    assert strip.dtype == np.uint8 and strip.shape == (24, 24 + 6 + 24, 3)
    assert (strip[:, :24] == np.repeat(np.repeat(result.image, 3, 0), 3, 1)).all()
    assert (strip[:, 24:30] == 255).all()
