"""The one verdict policy: threshold + unsure band → label and verdict."""

from __future__ import annotations

import pytest

from detector.verdict import VerdictPolicy


def test_labels_and_unsure_band():
    policy = VerdictPolicy(0.5, unsure_margin=0.1)
    assert [policy.verdict(p) for p in (0.95, 0.05, 0.55, 0.45, None)] == ["fake", "real", "unsure", "unsure", "error"]
    assert [policy.label(p) for p in (0.5, 0.49, None)] == ["fake", "real", None]
    assert VerdictPolicy(0.5, unsure_margin=0.0).verdict(0.45) == "real"
    assert policy.verdict(0.99, low_confidence=True) == "unsure" and policy.label(0.99) == "fake"


def test_flips_are_judged_at_the_policys_threshold():
    # the cases from issue 9: a score falling from 0.954 to 0.380 stays fake at 0.3, crosses at 0.8 only the other one
    assert not VerdictPolicy(0.3).flips(0.954, 0.380)
    assert VerdictPolicy(0.5).flips(0.954, 0.380)
    assert VerdictPolicy(0.8).flips(0.976, 0.783)
    assert not VerdictPolicy(0.8).flips(0.976, None)


def test_with_threshold_keeps_the_margin_and_validates():
    policy = VerdictPolicy(0.5, unsure_margin=0.05).with_threshold(0.3)
    assert policy == VerdictPolicy(0.3, 0.05) and policy.with_threshold(None) is policy
    for bad in (0.0, 1.0, -0.2):
        with pytest.raises(ValueError, match="threshold"):
            VerdictPolicy(bad)
    with pytest.raises(ValueError, match="unsure_margin"):
        VerdictPolicy(0.5, unsure_margin=0.6)


def test_an_asymmetric_band_from_the_card():
    """Below the threshold the band may reach further than above it (where validated thresholds disagree)."""
    policy = VerdictPolicy(0.8, unsure_margin=0.2, unsure_above=0.05)
    assert policy.band == pytest.approx((0.6, 0.85))
    assert [policy.verdict(p) for p in (0.59, 0.61, 0.79, 0.81, 0.84, 0.86)] == ["real", "unsure", "unsure", "unsure", "unsure", "fake"]
    assert policy.label(0.79) == "real" and policy.label(0.81) == "fake"  # the label is still the side of the threshold
    moved = policy.with_threshold(0.5)  # the slider moves the band with the threshold
    assert moved.band == pytest.approx((0.3, 0.55))
    assert policy.to_dict() == {"threshold": 0.8, "unsure_margin": 0.2, "unsure_above": 0.05}
    with pytest.raises(ValueError, match="unsure_above"):
        VerdictPolicy(0.5, unsure_above=0.7)
