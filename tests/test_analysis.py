"""Robustness re-checks, verdict bands, cost measurement and the JSON report."""

from __future__ import annotations

import json

import pytest
from conftest import encode, make_photo

from detector import Detector
from detector.analysis import build_report, measure_costs, robustness
from detector.verdict import VerdictPolicy


@pytest.fixture(scope="module")
def detector(tiny_weights):
    return Detector.from_pretrained(str(tiny_weights))


def test_robustness_rescores_perturbed_copies(detector):
    items = [encode(make_photo(seed=1)), b"broken", encode(make_photo(seed=2))]
    results = detector.detect(items)
    report = robustness(detector, items, results)
    assert report[1] == {}
    for entry, original in ((report[0], results[0]), (report[2], results[2])):
        assert set(entry) == {"jpeg_q75", "rescale_0.5x"}
        for check in entry.values():
            assert 0 <= check["p_fake"] <= 1
            flipped = (check["p_fake"] >= detector.threshold) != (original.p_fake >= detector.threshold)
            assert check["flips"] == flipped


def test_costs_report_calls_and_times(detector):
    costs = measure_costs(detector, repeats=1)
    pipelines = costs["pipelines"]
    calls = [entry["unet_calls"] for entry in pipelines.values()]
    assert calls == [40, 1, 0]
    dire, distil, image_only = (entry["ms"] for entry in pipelines.values())
    assert dire > distil > image_only > 0


def test_report_is_json_and_names_the_model(detector, image_files):
    paths = [image_files["good_png"], image_files["text"]]
    results = detector.detect(paths)
    report = build_report(detector, paths, results, names=["a.png", "notes.png"])
    text = json.dumps(report)
    assert report["model"]["weights_sha256_16"] and report["model"]["preprocessing"]
    good, bad = report["files"]
    assert good["file"] == "a.png" and len(good["sha256"]) == 64 and good["verdict"] in ("fake", "real", "unsure")
    assert bad["verdict"] == "error" and "not an image" in bad["error"]
    assert "NaN" not in text


def test_robustness_flips_follow_the_requests_threshold(detector):
    items = [encode(make_photo(seed=3))]
    before = detector.detect(items)[0].p_fake
    after = robustness(detector, items, detector.detect(items))[0]["jpeg_q75"]["p_fake"]
    assert before != after
    between = VerdictPolicy((before + after) / 2)
    below = VerdictPolicy(min(before, after) / 2, unsure_margin=0.0)
    assert robustness(detector, items, detector.detect(items, policy=between), between)[0]["jpeg_q75"]["flips"]
    assert not robustness(detector, items, detector.detect(items, policy=below), below)[0]["jpeg_q75"]["flips"]


@pytest.mark.parametrize("threshold", [0.3, 0.8])
def test_report_label_and_verdict_come_from_one_policy(detector, threshold):
    items = [encode(make_photo(seed=s)) for s in range(4)]
    policy = VerdictPolicy(threshold, unsure_margin=0.05)
    results = detector.detect(items, policy=policy)
    report = build_report(detector, items, results, robust=robustness(detector, items, results, policy), policy=policy)
    assert report["policy"] == {"threshold": threshold, "unsure_margin": 0.05}
    for entry in report["files"]:
        assert entry["label"] == ("fake" if entry["p_fake"] >= threshold else "real")
        assert entry["verdict"] in (entry["label"], "unsure")
        for check in entry["robustness"].values():
            assert check["flips"] == ((check["p_fake"] >= threshold) != (entry["p_fake"] >= threshold))
