"""The threshold rules and their out-of-sample validation by fold rotation (train.threshold)."""

from __future__ import annotations

import numpy as np
import pytest

from train.classifiers import training_groups
from train.corpus import Record
from train.threshold import RULES, Scores, compare_rules, fold_thresholds, rotate, source_mean_fpr, unsure_band


def _scores(seed: int = 0, folds: int = 4, shift: float = 0.0) -> Scores:
    """Per fold 40 photos from two sources and 40 fakes (p = σ(logit)); fold k's logits are shifted by ``shift * k``."""
    rng = np.random.default_rng(seed)
    z, y, f, s = [], [], [], []
    for k in range(folds):
        for source, mean in (("a", -1.0), ("b", 0.0)):
            z += list(rng.normal(mean, 1.0, 20) + shift * k)
            y += [0] * 20
            s += [f"{source}{k}"] * 20
        z += list(rng.normal(1.5, 1.0, 40) + shift * k)
        y += [1] * 40
        s += [f"gen{k}"] * 40
        f += [k] * 80
    return Scores(1 / (1 + np.exp(-np.array(z))), np.array(y), np.array(f), np.array(s))


def test_pooled_fpr_rule_bounds_false_positives_on_what_it_sees():
    s = _scores()
    for name, fpr in (("pooled-fpr-5", 0.05), ("pooled-fpr-10", 0.10)):
        t = RULES[name](s)
        z_real = s.p[s.labels == 0]
        assert np.mean(z_real >= t) <= fpr
        assert np.mean(z_real >= z_real[z_real < t].max()) > fpr  # and it is the lowest such threshold


def test_source_mean_rule_weighs_each_photo_source_equally():
    """A small photo source that scores high moves the source-mean threshold more than the pooled one."""
    big = np.linspace(-3, 0, 200)
    small = np.linspace(1, 2, 10)
    s = Scores(np.r_[big, small, [3.0]], np.r_[np.zeros(210), [1]].astype(int), np.zeros(211, int),
               np.r_[["big"] * 200, ["small"] * 10, ["gen"]])
    pooled, balanced = RULES["pooled-fpr-10"](s), source_mean_fpr(0.10)(s)
    assert balanced > pooled
    mean_fpr = np.mean([np.mean(big >= balanced), np.mean(small >= balanced)])
    assert mean_fpr <= 0.10


def test_rotation_chooses_on_the_other_folds_only():
    s = _scores()
    seen_folds = []

    def spy(sub: Scores) -> float:
        seen_folds.append(sorted(set(sub.folds.tolist())))
        return 0.5

    rotations = rotate(s, spy)
    assert seen_folds == [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]
    held = s.folds == 2
    assert rotations[2]["tpr"] == pytest.approx(np.mean(s.p[held & (s.labels == 1)] >= 0.5))
    assert rotations[2]["fpr"] == pytest.approx(np.mean(s.p[held & (s.labels == 0)] >= 0.5))


def test_held_out_figures_reveal_a_threshold_that_does_not_transfer():
    """When each fold's scores sit lower than the others', a threshold chosen elsewhere finds fewer
    fakes out of sample than in sample; the in-sample figure would have hidden it."""
    s = _scores(shift=-0.6)
    t = RULES["pooled-fpr-5"](s)
    in_sample = np.mean(s.p[(s.labels == 1) & (s.folds == 3)] >= t)
    held = rotate(s, RULES["pooled-fpr-5"])[3]["tpr"]
    assert held < in_sample


def test_compare_rules_applies_its_stated_criterion():
    s = _scores(seed=3)
    table = compare_rules(s, list(RULES), max_fpr=0.08)
    eligible = [n for n, r in table["rules"].items() if r["fpr_mean"] <= 0.08]
    best = max(eligible, key=lambda n: table["rules"][n]["tpr_mean"] - table["rules"][n]["tpr_std"])
    assert table["chosen"] == best
    strict = compare_rules(s, list(RULES), max_fpr=0.0)  # nothing eligible: every rule competes
    assert strict["chosen"] in RULES


def test_unsure_band_covers_where_thresholds_disagree():
    assert unsure_band(0.6, [0.52, 0.7, 0.61]) == pytest.approx((0.08, 0.1))
    assert unsure_band(0.6, [0.59, 0.61]) == pytest.approx((0.05, 0.05))  # floor
    assert unsure_band(0.6, [0.1, 0.9]) == pytest.approx((0.25, 0.25))  # ceiling
    assert unsure_band(0.97, [0.8, 0.99])[1] < 0.03  # the band stays inside (0, 1)
    s = _scores(shift=-0.6)
    own = fold_thresholds(s, RULES["pooled-fpr-5"])
    assert own == sorted(own, reverse=True)  # each fold's own threshold follows its score scale


def test_learning_curve_shares_are_nested_and_keep_both_classes():
    records = [Record(f"/f/{g}/{i}.png", 1, g, g, g, fold=k) for k, g in enumerate("abcdefgh") for i in range(3)]
    records += [Record(f"/r/{g}/{i}.jpg", 0, "camera", g, g, fold=k % 4) for k, g in enumerate(["p", "q", "r", "s", "t"]) for i in range(3)]
    for f in (0.25, 0.5, 0.75):
        smaller, larger = training_groups(records, 0, f, 0), training_groups(records, 0, min(1.0, f + 0.25), 0)
        assert smaller <= larger
        assert any(g in smaller for g in "bcdefgh") and any(g in smaller for g in "qrs")
    assert "a" not in training_groups(records, 0, 1.0, 0) and "p" not in training_groups(records, 0, 1.0, 0)


def test_lever_is_kept_only_when_it_wins_past_the_fold_spread():
    from train.levers import compare

    rng = np.random.default_rng(1)
    y = np.tile(np.r_[np.ones(50), np.zeros(50)], 4).astype(int)
    folds = np.repeat(np.arange(4), 100)
    base = y * 1.0 + rng.normal(0, 1.0, 400)
    better = base + y * 0.4  # every fold separates better
    mixed = base + np.where(folds % 2 == 0, 0.6, -0.6) * y  # two folds better, two worse
    assert compare("better", y, folds, base, better, "none")["kept"]
    kept = compare("mixed", y, folds, base, mixed, "none")
    assert not kept["kept"] and kept["gain_per_fold_std"] > abs(kept["gain_per_fold_mean"])
