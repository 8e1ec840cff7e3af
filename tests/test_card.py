"""The model card in words: what a low score is worth, read from the card's own validation numbers."""

from __future__ import annotations

import pytest

from detector.card import card_markdown, share_flagged, verdict_caveat

CARD = {"reference_histograms": {"edges": [0.0, 0.25, 0.5, 0.75, 1.0],
                                 "v": {"real": [60, 30, 8, 2], "fake": [10, 20, 30, 40]}}}


def test_share_flagged_reads_the_histograms():
    assert share_flagged(CARD, "v", 0.0) == (1.0, 100) and share_flagged(CARD, "v", 1.0) == (0.0, 100)
    assert share_flagged(CARD, "v", 0.5)[0] == pytest.approx(0.7)  # the two top bins of the fakes
    assert share_flagged(CARD, "v", 0.625)[0] == pytest.approx(0.55)  # half of the 0.5-0.75 bin, linearly
    assert share_flagged(CARD, "v", 0.5, "real")[0] == pytest.approx(0.1)
    assert share_flagged(CARD, "other", 0.5) is None and share_flagged({}, "v", 0.5) is None


def test_the_caveat_follows_the_cards_numbers_and_the_threshold():
    strict, loose = verdict_caveat(CARD, "v", 0.75), verdict_caveat(CARD, "v", 0.25)
    assert "flags about 40%" in strict and "misses the other 60%" in strict and "0.75" in strict
    assert "flags about 90%" in loose and "not proof of a photograph" in loose
    assert "not measured here" in verdict_caveat({}, None, 0.5)


def test_model_card_shows_the_config_and_no_server_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILDIRE_CACHE", str(tmp_path))
    text = card_markdown("distildire-imagenet")
    assert "Verdict: fake at p(fake) ≥ 0.5" in text and "1 UNet call(s) per image" in text
    assert str(tmp_path) not in text  # web visitors see no server paths
