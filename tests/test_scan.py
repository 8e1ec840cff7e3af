"""``scan --jsonl``: sharded over processes (``accelerate launch``), written as it goes, resumable."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import encode, make_photo

from detector.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def folder(tmp_path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(7):
        (images / f"img{i}.png").write_bytes(encode(make_photo(70 + 10 * i, 64, seed=i)))
    (images / "broken.png").write_bytes(b"not an image")
    return images


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_processes_give_the_union_of_one(tiny_weights, folder, tmp_path):
    if shutil.which("accelerate") is None:
        pytest.skip("accelerate's launcher is not on PATH")
    single, sharded = tmp_path / "single.jsonl", tmp_path / "sharded.jsonl"
    assert main(["scan", str(folder), "--weights", str(tiny_weights), "--jsonl", str(single), "--quiet"]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "detector", "scan", str(folder),
              "--weights", str(tiny_weights), "--jsonl", str(sharded), "--quiet", "--workers", "1"]
    done = subprocess.run(launch, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("(this process)") == 2  # both processes ran ...
    shares = sorted(int(a) + int(b) for a, b in re.findall(r"(\d+) scored, (\d+) unreadable", done.stderr))
    assert shares == [4, 4]  # ... on half of the files each

    one, two = _records(single), _records(sharded)
    assert len(two) == len({r["source"] for r in two}) == 8  # no duplicates
    by_source = {r["source"]: r for r in one}
    assert set(by_source) == {r["source"] for r in two}
    for record in two:
        twin = by_source[record["source"]]
        assert record["verdict"] == twin["verdict"] and (record["error"] is None) == (twin["error"] is None)
        if record["p_fake"] is not None:
            assert record["p_fake"] == pytest.approx(twin["p_fake"], abs=1e-5)
    assert not list(tmp_path.glob("sharded.jsonl.part-*"))  # parts merged and removed


def test_a_resumed_scan_skips_what_is_done(tiny_weights, folder, tmp_path, capsys):
    out = tmp_path / "results.jsonl"
    first = str(folder / "img0.png")
    sentinel = {"source": first, "p_fake": 0.123456, "verdict": "real", "error": None}
    out.write_text(json.dumps(sentinel) + "\n" + '{"source": "torn li')  # a run killed mid-line
    killed_part = tmp_path / "results.jsonl.part-1"  # an unmerged part of a killed two-process run
    killed_part.write_text(json.dumps({**sentinel, "source": str(folder / "img1.png"), "p_fake": 0.654321}) + "\n")

    assert main(["scan", str(folder), "--weights", str(tiny_weights), "--jsonl", str(out), "--quiet"]) == 0
    records = _records(out)
    sources = [r["source"] for r in records]
    assert sorted(sources) == sorted(str(p) for p in folder.iterdir()) and len(sources) == len(set(sources))
    assert {r["source"]: r["p_fake"] for r in records}[first] == 0.123456  # not scored again
    assert {r["source"]: r["p_fake"] for r in records}[str(folder / "img1.png")] == 0.654321
    assert not killed_part.exists()
    assert "5 scored, 1 unreadable, 2 already in" in capsys.readouterr().err

    assert main(["scan", str(folder), "--weights", str(tiny_weights), "--jsonl", str(out), "--quiet"]) == 0
    assert len(_records(out)) == len(records)  # everything done: nothing added
    assert "0 scored, 0 unreadable, 8 already in" in capsys.readouterr().err
