"""`python -m detector scan`: folders recursed, bad files reported in place, JSON/CSV written."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from detector.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_scan_folder_with_good_and_bad_files(tiny_weights, image_files, tmp_path, capsys):
    folder = image_files["good_png"].parent
    (folder / "nested").mkdir()
    (folder / "nested" / "f_inner.png").write_bytes(image_files["good_png"].read_bytes())
    (folder / "README.txt").write_text("not scanned: no image suffix")
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    code = main(["scan", str(folder), "--weights", str(tiny_weights), "--json", str(out_json), "--csv", str(out_csv),
                 "--quiet", "--batch-size", "2"])
    assert code == 0
    table = capsys.readouterr().out
    assert "truncated or damaged" in table and "ERROR" in table
    report = json.loads(out_json.read_text())
    rows = {Path(r["source"]).name: r for r in report["results"]}
    assert set(rows) == {"a_good.png", "b_good.jpg", "c_truncated.jpg", "d_notes.png", "e_empty.jpg", "f_inner.png"}
    assert rows["a_good.png"]["label"] in ("fake", "real") and rows["c_truncated.jpg"]["error"]
    assert abs(rows["a_good.png"]["p_fake"] - rows["f_inner.png"]["p_fake"]) < 1e-5
    assert report["model"]["weights_sha256_16"]
    with open(out_csv) as fh:
        assert len(list(csv.DictReader(fh))) == 6


def test_scan_threshold_sets_label_and_verdict(tiny_weights, image_files, tmp_path, capsys):
    out_json = tmp_path / "r.json"
    good = [str(image_files["good_png"]), str(image_files["good_jpg"])]
    assert main(["scan", *good, "--weights", str(tiny_weights), "--json", str(out_json), "--quiet"]) == 0
    scores = [r["p_fake"] for r in json.loads(out_json.read_text())["results"]]
    threshold = round(sum(scores) / 2, 6) if abs(scores[0] - scores[1]) > 1e-4 else round(scores[0] - 0.2, 6)
    assert main(["scan", *good, "--weights", str(tiny_weights), "--json", str(out_json), "--quiet",
                 "--threshold", str(threshold)]) == 0
    report = json.loads(out_json.read_text())
    assert report["model"]["threshold"] == threshold
    for r in report["results"]:
        assert r["label"] == ("fake" if r["p_fake"] >= threshold else "real")
        assert r["verdict"] in (r["label"], "unsure")
    assert f"unsure (p between {threshold - 0.1:.2f} and {threshold + 0.1:.2f}; threshold {threshold:.2f})" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path):
    run = subprocess.run([sys.executable, "-m", "detector", "scan"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert run.returncode == 2 and "usage" in run.stderr
    assert main(["scan", str(tmp_path)]) == 2  # an empty folder: nothing to scan


def test_missing_weights_is_reported(tmp_path, capsys, image_files):
    assert main(["scan", str(image_files["good_png"]), "--weights", str(tmp_path)]) == 1
    assert "card.json" in capsys.readouterr().err


def test_scan_json_and_table_carry_provenance(tiny_weights, tmp_path, capsys):
    from conftest import make_photo
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a prompt\nSteps: 20, Sampler: Euler a, Seed: 5, Model: sd15")
    make_photo().save(tmp_path / "a1111.png", pnginfo=info)
    out = tmp_path / "r.json"
    assert main(["scan", str(tmp_path / "a1111.png"), "--weights", str(tiny_weights), "--json", str(out), "--quiet"]) == 0
    assert "declares AI generation (unsigned metadata: AUTOMATIC1111-style parameters" in capsys.readouterr().out
    provenance = json.loads(out.read_text())["results"][0]["provenance"]
    assert provenance["declares_ai"] and provenance["generator"]["model"] == "sd15" and "prompt" not in str(provenance)
