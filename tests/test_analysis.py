"""Robustness re-checks, verdict bands, cost measurement and the JSON report."""

from __future__ import annotations

import json

import pytest
from conftest import encode, make_photo

from detector import Detector
from detector.analysis import build_report, measure_costs, robustness, verdict


@pytest.fixture(scope="module")
def detector(tiny_weights):
    return Detector.from_pretrained(str(tiny_weights))


def test_verdict_bands():
    assert verdict(0.95, 0.5) == "fake" and verdict(0.05, 0.5) == "real"
    assert verdict(0.55, 0.5) == "unsure" and verdict(0.45, 0.5, unsure_margin=0.01) == "real"
    assert verdict(None, 0.5) == "error"


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
