"""Robustness re-checks, verdict bands, cost measurement, the JSON report and the shared results table."""

from __future__ import annotations

import json

import pytest
from conftest import encode, make_photo

from detector import Detector
from detector.costs import CostModel, measure_costs
from detector.report import build_report, format_table, robustness, table_row
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
    results = [r.renamed(name) for r, name in zip(detector.detect(paths), ["a.png", "notes.png"])]
    report = build_report(detector, paths, results)
    text = json.dumps(report)
    assert report["model"]["weights_sha256_16"] and report["model"]["preprocessing"]["mode"] == "resize-center-crop"
    assert report["model"]["unet_calls_per_image"] == 1 and report["created"] and report["detector_version"]
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


def test_table_rows_are_shared_by_cli_and_app(detector, image_files):
    paths = [image_files["good_png"], image_files["text"]]
    report = build_report(detector, paths, detector.detect(paths))
    good, bad = (table_row(entry) for entry in report["files"])
    assert good[1] in ("FAKE", "NO SIGN FOUND", "UNSURE") and good[2] == report["files"][0]["p_fake"] and good[3] == 1
    assert bad[1] == "ERROR" and bad[2] is None and bad[4] is None and "not an image" in bad[5]
    text = format_table(report["files"]).splitlines()
    assert text[0].split() == ["file", "verdict", "p_fake", "UNet", "calls", "ms", "notes", "provenance", "(declared",
                               "by", "the", "file)"]
    assert text[3].split()[1:3] == ["ERROR", "-"]


def test_cost_model_follows_observed_runs(detector):
    costs = CostModel(detector, window=3)
    assert costs.unet_calls(2) == 2 and costs.unet_calls(1, with_dire=True) == 41
    for _ in range(3):
        costs.observe(11.0, 1)  # as the ADM-256 on 2 CPU cores
    assert costs.estimate_seconds(2) == pytest.approx(22.0)
    for _ in range(3):  # the load went away: the estimate follows
        costs.observe(0.5, 10)
    assert costs.estimate_seconds(2) == pytest.approx(0.1)
