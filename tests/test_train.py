"""The training recipe end to end on a tiny synthetic config (seconds), then loaded through detector/."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_photo
from safetensors.torch import load_file

from detector import Detector
from train.cache import load_cache
from train.classifiers import augment
from train.config import ClassifierConfig, load_config
from train.data import list_samples, split_photos
from train.recipe import run

TINY = {
    "name": "tiny",
    "data": {"patch_size": 32, "val_photos": 1, "test_photos": 1,
             "patches_per_photo": {"train": 8, "val": 8, "test": 8}, "min_window": 24},
    "diffusion": {"block_out_channels": [32, 32], "attention_levels": [1], "batch_size": 8, "max_steps": 30,
                  "checkpoint_every": 15, "sample_steps": 3},
    "fakes": {"sample_steps": 3, "regen_steps": 4, "per_split": {"train": 16, "val": 8, "test": 8}, "batch_size": 8},
    "cache": {"dire_steps": 2, "batch_size": 16, "per_class": {"train": 16, "val": 8, "test": 8}},
    "classifier": {"depth": 10, "epochs": 3, "batch_size": 8, "lr": 3e-3, "jpeg_prob": 0.5, "resize_prob": 0.3},
    "threads": 1,  # one thread: no oversubscription when something else runs beside the tests
}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    photos = root / "photos"
    photos.mkdir()
    for i in range(5):
        make_photo(96 + 8 * i, 80, seed=10 + i).save(photos / f"photo{i}.jpg", quality=95)
    cfg = load_config(None, **{**TINY, "workdir": str(root / "work"), "data": {**TINY["data"], "photos": str(photos)}})
    weights = root / "weights"
    threads = torch.get_num_threads()
    try:
        metrics = run(cfg, weights, log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    return cfg, weights, metrics


def test_split_is_by_photo_and_deterministic(tmp_path):
    photos = [tmp_path / f"p{i}.jpg" for i in range(10)]
    a, b = split_photos(photos, 2, 3, seed=4), split_photos(photos, 2, 3, seed=4)
    assert a == b and len(a["val"]) == 2 and len(a["test"]) == 3 and len(a["train"]) == 5
    assert not set(a["train"]) & set(a["test"]) and not set(a["val"]) & set(a["test"])


def test_data_and_fakes_on_disk(recipe):
    cfg, _, _ = recipe
    manifest = json.loads(open(f"{cfg.workdir}/data/manifest.json").read())
    photos = {split: set(names) for split, names in manifest["splits"].items()}
    assert not photos["train"] & photos["test"] and not photos["train"] & photos["val"]
    test = list_samples(cfg.workdir + "/data", "test")
    kinds = {s.kind for s in test}
    assert kinds == {"real", "sample", "regen"}
    assert sum(s.label for s in test) == 8 and all(s.path.suffix == ".png" for s in test)


def test_cache_matches_the_detector(recipe):
    """Cached ε equals what the exported Detector computes from the same PNG (the shipped UNet, fp32)."""
    cfg, weights, _ = recipe
    cache, meta = load_cache(cfg, "test")
    assert cache["images"].dtype == torch.uint8 and cache["eps"].dtype == torch.float32
    assert cache["dire"].shape == cache["images"].shape == (16, 3, 32, 32)
    detector = Detector.from_pretrained(str(weights))
    result = detector.detect_one(meta[3]["path"])
    np.testing.assert_allclose(result.eps, cache["eps"][3].permute(1, 2, 0).numpy(), atol=1e-4)


def test_losses_fall_and_best_checkpoint_kept(recipe):
    cfg, _, _ = recipe
    for role in ("teacher", "student", "image-only", "baseline"):
        summary = json.loads(open(f"{cfg.workdir}/classifiers/{role}.json").read())
        history = summary["history"]
        assert len(history) == 3
        assert summary["best_val_ap"] == max(h["val_ap"] for h in history)
    baseline = json.loads(open(f"{cfg.workdir}/classifiers/baseline.json").read())["history"]
    assert baseline[-1]["bce"] < baseline[0]["bce"]  # fakes of a 30-step UNet are easy to learn
    student = json.loads(open(f"{cfg.workdir}/classifiers/student.json").read())["history"]
    assert all(h["kd"] > 0 for h in student)  # distillation term active
    diffusion = json.loads(open(f"{cfg.workdir}/diffusion/history.json").read())
    assert diffusion[-1]["loss"] < diffusion[0]["loss"]


def test_export_round_trips_through_detector(recipe):
    cfg, weights, metrics = recipe
    card = json.loads((weights / "card.json").read_text())
    assert set(card["variants"]) == {"distildire", "image-only"} and card["image_size"] == 32
    assert card["metrics"]["models"]["distildire"]["clean"]["ap"] == metrics["models"]["distildire"]["clean"]["ap"]
    assert set(card["reference_histograms"]) >= {"edges", "distildire", "image-only", "baseline", "dire-teacher"}
    student = load_file(str(weights / "distildire.safetensors"))
    assert student["student_backbone.conv1.weight"].dtype == torch.float16
    full = Detector.from_pretrained(str(weights))
    fast = Detector.from_pretrained(str(weights), variant="image-only")
    assert full.uses_eps and not fast.uses_eps and full.image_size == 32
    for name in ("distildire", "image-only", "baseline"):
        entry = metrics["models"][name]
        assert set(entry) >= {"clean", "jpeg75", "jpeg50", "resize0.5", "format_trap"}
        assert 0.0 <= entry["clean"]["ap"] <= 1.0 and set(entry["clean"]["per_kind"]) == {"sample", "regen"}


def test_augmentation_changes_pixels_and_flags_them():
    gen = torch.Generator().manual_seed(0)
    pixels = torch.from_numpy(np.stack([np.asarray(make_photo(32, 32, seed=s)) for s in range(16)])).permute(0, 3, 1, 2)
    config = ClassifierConfig(jpeg_prob=1.0, resize_prob=0.0, flip=False, jpeg_quality=[30, 30])
    out, flipped, altered = augment(pixels, config, gen)
    assert altered.all() and not flipped.any()
    assert (out.float() - pixels.float()).abs().mean() > 1.0
    untouched, _, altered = augment(pixels, ClassifierConfig(jpeg_prob=0.0, resize_prob=0.0, flip=False), gen)
    assert not altered.any() and torch.equal(untouched, pixels)


def test_recipe_runs_data_parallel_under_accelerate(tmp_path):
    """Two CPU processes (gloo) through `accelerate launch`, no code changes: the multi-GPU path."""
    import subprocess
    import sys
    from pathlib import Path

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5):
        make_photo(96 + 8 * i, 80, seed=10 + i).save(photos / f"photo{i}.jpg", quality=95)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({**TINY, "workdir": str(tmp_path / "work"), "data": {**TINY["data"], "photos": str(photos)}}))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "train.recipe", "--config", str(config),
               "--out", str(tmp_path / "weights")]
    run = subprocess.run(command, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "recipe done" in run.stdout
    cache = load_file(str(tmp_path / "work" / "cache" / "train.safetensors"))
    assert len(cache["labels"]) == 32  # both processes' shares merged
    assert len(list((tmp_path / "work" / "data" / "train" / "fakes").glob("*.png"))) == 16
    Detector.from_pretrained(str(tmp_path / "weights")).detect_one(make_photo())


def test_generate_writes_samples_and_regenerations(tiny_weights, tmp_path):
    from PIL import Image

    from train.generate import main as generate

    source = tmp_path / "reals"
    source.mkdir()
    make_photo(seed=5).save(source / "a.jpg")
    (source / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert generate(["--n", "3", "--seed", "1", "--steps", "3", "--out", str(out), "--from", str(source),
                     "--weights", str(tiny_weights)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["regen_a.png", "sample_1_0000.png", "sample_1_0001.png", "sample_1_0002.png"]
    assert Image.open(out / "regen_a.png").size == (32, 32)
