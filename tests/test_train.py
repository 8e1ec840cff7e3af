"""The training recipe end to end on a tiny synthetic corpus (seconds), then loaded through detector/."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY_SIZE, make_photo
from PIL import Image

from detector import Detector
from detector.tiling import aggregate, image_to_tiles
from train.config import load_config
from train.corpus import assign_folds, build_records, summary
from train.crops import load_crops, load_tiles
from train.recipe import run

TINY = {
    "name": "tiny",
    "crops": {"tile": TINY_SIZE, "draws": 2, "crops_per_draw": 2, "window": 96, "batch_size": 16,
              "augment": {"denoise_strength": [3.0, 4.0]}, "dire_steps": 2, "dire_fraction": 0.5},
    "classifier": {"depth": 10, "epochs": 2, "batch_size": 8, "lr": 3e-3, "kd_weight": 0.5, "learning_curve": [0.5]},
    "eval": {"max_tiles": 4, "conditions": {"clean": "both", "jpeg_q95": "both", "rescale_0.5x": "both",
                                            "denoise": "reals"}, "threshold_rule": "pooled-fpr-10"},
    "threads": 1,  # one thread: no oversubscription when something else runs beside the tests
}


def _render(width: int, height: int, seed: int) -> Image.Image:
    """A clean, smooth 'render' (no sensor noise): the tiny corpus's generated images."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    a, b = rng.uniform(5, 15, 2)
    base = np.stack([np.sin(xx / a), np.cos(yy / b), np.sin((xx + yy) / (a + b))], -1) * 90 + 128
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def make_corpus(root) -> None:
    """DIR/{reals,fakes}/<source>/*: two photo sources, two generators, PNG and JPEG in both classes."""
    for source in ("camA", "camB"):
        folder = root / "reals" / source
        folder.mkdir(parents=True)
        for i in range(4):
            image = make_photo(96 + 8 * i, 80, seed=100 * len(source) + i + (10 if source == "camB" else 0))
            image.save(folder / f"{i}.jpg", quality=90) if i % 2 else image.save(folder / f"{i}.png")
    for generator in ("genA", "genB"):
        folder = root / "fakes" / generator
        folder.mkdir(parents=True)
        for i in range(4):
            image = _render(80 + 8 * i, 88, seed=i + (50 if generator == "genB" else 0))
            image.save(folder / f"{i}.png") if i % 2 else image.save(folder / f"{i}.jpg", quality=95)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, tiny_weights):
    root = tmp_path_factory.mktemp("recipe")
    make_corpus(root / "corpus")
    cfg = load_config(None, **{**TINY, "workdir": str(root / "work"),
                               "corpus": {"manifests": [], "photo_dirs": [], "image_dirs": [str(root / "corpus")], "folds": 2},
                               "diffusion": {"init": str(tiny_weights / "unet")}})
    weights = root / "weights"
    threads = torch.get_num_threads()
    try:
        metrics = run(cfg, weights, log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    return cfg, weights, metrics


def test_folds_hold_out_whole_sources(recipe):
    cfg, _, _ = recipe
    records = build_records(cfg.corpus)
    assert len(records) == 16 and sum(r.label for r in records) == 8
    for group in {r.group for r in records}:
        assert len({r.fold for r in records if r.group == group}) == 1  # a source never spans two folds
    folds = summary(records)
    assert {k: (f["fakes"], f["reals"]) for k, f in folds.items()} == {0: (4, 4), 1: (4, 4)}
    assert build_records(cfg.corpus) == records  # deterministic


def test_large_photo_sources_are_chunked_and_folds_balanced():
    from train.corpus import Record, _chunk_large_sources

    records = [Record(f"/x/big/{i}.jpg", 0, "camera", "big", "big") for i in range(100)]
    records += [Record(f"/x/g{k}/{i}.png", 1, f"g{k}", f"g{k}", f"g{k}") for k in range(5) for i in range(k + 1)]
    _chunk_large_sources(records, 40)
    assert sorted({r.group for r in records if r.label == 0}) == ["big/0", "big/1", "big/2"]
    assign_folds(records, 3, seed=0)
    photos_per_fold = [sum(1 for r in records if r.label == 0 and r.fold == k) for k in range(3)]
    assert sorted(photos_per_fold) == [33, 33, 34]
    fakes_per_fold = sorted(sum(1 for r in records if r.label == 1 and r.fold == k) for k in range(3))
    assert fakes_per_fold == [5, 5, 5]


def test_crops_are_native_tiles_with_the_detectors_eps(recipe):
    cfg, weights, _ = recipe
    crops = load_crops(cfg)
    assert crops["pixels"].dtype == torch.uint8 and crops["pixels"].shape[1:] == (3, TINY_SIZE, TINY_SIZE)
    assert crops["eps"].dtype == torch.float16 and set(crops["label"].tolist()) == {0, 1}
    meta = json.loads(cfg.work.crops_meta.read_text())
    assert len(meta["ops"]) == len(crops["pixels"])
    # the cached evaluation tiles are exactly what the exported Detector scores
    records = build_records(cfg.corpus)
    tiles = load_tiles(cfg, "clean")
    index = 3
    rows = (tiles["record"] == index).nonzero().squeeze(1)
    expected, _grid = image_to_tiles(Image.open(records[index].path).convert("RGB"), TINY_SIZE, 4)
    assert torch.equal(((expected + 1) * 127.5).round().to(torch.uint8), tiles["pixels"][rows])
    detector = Detector.from_pretrained(str(weights))
    with torch.inference_mode():
        eps = detector.eps(expected)
    np.testing.assert_allclose(eps.numpy(), tiles["eps"][rows].float().numpy(), atol=2e-3)  # float16 storage
    denoised = load_tiles(cfg, "denoise")
    assert {records[r].label for r in denoised["record"].tolist()} == {0}  # photo-only condition


def test_fold_models_score_only_their_held_out_records(recipe):
    cfg, _, _ = recipe
    records = build_records(cfg.corpus)
    for fold in (0, 1):
        log = json.loads(cfg.work.classifier_log("student", fold).read_text())
        held = {int(r) for r in log["held_out_tile_logits"]["clean"]}
        assert held == {i for i, r in enumerate(records) if r.fold == fold}
        assert len(log["history"]) == 2 and all(h["bce"] > 0 for h in log["history"])
    for variant in ("teacher", "student", "image-only"):
        assert cfg.work.classifier(variant, None).is_file()


def test_distillation_terms_are_active(recipe):
    """The student distils the fold's DIRE teacher (layer4 MSE), the image-only tier the fold's student."""
    cfg, _, _ = recipe
    dire = load_crops(cfg, with_dire=True)
    share = dire["has_dire"].float().mean().item()
    assert 0.3 < share < 0.7 and dire["dire"][dire["has_dire"]].float().mean() > 0  # DIRE of half the crops
    assert (dire["dire"][~dire["has_dire"]] == 0).all()
    teacher = json.loads(cfg.work.classifier_log("teacher", 0).read_text())
    assert teacher["held_out_tile_logits"] == {}  # no DIRE for inference tiles: crop-level diagnostics only
    student = json.loads(cfg.work.classifier_log("student", 0).read_text())
    fast = json.loads(cfg.work.classifier_log("image-only", 0).read_text())
    assert student["distilled_from"] == "teacher" and all(h["kd"] > 0 for h in student["history"])
    assert fast["distilled_from"] == "student" and all(h["kd"] > 0 for h in fast["history"])


def test_evaluation_report_has_every_section(recipe):
    cfg, _, metrics = recipe
    assert set(metrics["models"]) == {"student", "image-only", "baseline-3-features"}
    for name, m in metrics["models"].items():
        assert 0.0 <= m["clean"]["auc"] <= 1.0 and 0.0 <= m["threshold"] <= 1.0, name
        assert set(m["families"]) == {"genA", "genB"} and set(m["photo_sources"]) == {"camA", "camB"}
        assert set(m["conditions"]) == {"jpeg_q95", "rescale_0.5x", "denoise"}
        assert "fpr" in m["conditions"]["denoise"] and "auc" not in m["conditions"]["denoise"]
        assert set(m["format_trap"]) == {"real", "fake"} and m["calibration"]["temperature"] > 0
        p_real = [p for r, p in m["scores"].items() if build_records(cfg.corpus)[int(r)].label == 0]
        assert np.mean(np.array(p_real) >= m["threshold"]) <= 0.10 + 1e-9  # the configured rule, pooled-fpr-10
        rule = m["threshold_rule"]
        assert rule["chosen"] == "pooled-fpr-10" and set(cfg.eval.threshold_rules) <= set(rule["rules"])
        assert [r["fold"] for r in rule["rules"]["pooled-fpr-10"]["rotations"]] == [0, 1]
        assert 0.0 < m["unsure_margin"] < 0.5 and 0.0 < m["unsure_above"] < 0.5 and m["threshold"] == rule["threshold"]
        low, high = m["threshold"] - m["unsure_margin"], m["threshold"] + m["unsure_above"]
        capped_low = m["unsure_margin"] == pytest.approx(min(0.25, m["threshold"] - 1e-3))
        capped_high = m["unsure_above"] == pytest.approx(min(0.25, 1 - m["threshold"] - 1e-3))
        assert all((low - 1e-9 <= t or capped_low) and (t <= high + 1e-9 or capped_high) for t in rule["fold_thresholds"])
        assert sum(f["found"] for f in m["families"].values()) == round(m["clean"]["tpr"] * 8)
    assert metrics["models"]["student"]["aggregate"] in cfg.eval.aggregations
    curve = metrics["learning_curve"]
    assert [p["fraction"] for p in curve] == [0.5, 1.0]  # one source per class and fold here: the share keeps it
    assert curve[0]["train_images_mean"] <= curve[1]["train_images_mean"] and 0.0 <= curve[0]["auc"] <= 1.0
    assert (cfg.work.eval / "learning_curve.png").is_file()
    assert (cfg.work.eval / "calibration.png").is_file() and (cfg.work.eval / "families.png").is_file()


def test_export_round_trips_through_detector(recipe):
    cfg, weights, metrics = recipe
    card = json.loads((weights / "card.json").read_text())
    assert set(card["variants"]) == {"distildire", "image-only"}
    chosen = metrics["models"]["student"]
    entry = card["variants"]["distildire"]
    assert entry["preprocessing"] == {"mode": "tiles", "tile": TINY_SIZE, "max_tiles": 4, "aggregate": chosen["aggregate"]}
    assert entry["calibration"] == chosen["calibration"] and entry["threshold"] == pytest.approx(chosen["threshold"])
    assert entry["unsure_margin"] == pytest.approx(chosen["unsure_margin"]) and "pooled-fpr-10" in card["threshold_policy"]
    assert card["data"]["images"] == {"generated": 8, "photos": 8} and "non-commercial" in card["license"]
    full = Detector.from_pretrained(str(weights))
    fast = Detector.from_pretrained(str(weights), variant="image-only")
    assert full.policy.band == pytest.approx((entry["threshold"] - entry["unsure_margin"], entry["threshold"] + entry["unsure_above"]))
    assert full.uses_eps and not fast.uses_eps and full.config.tiling.max_tiles == 4
    records = build_records(cfg.corpus)
    result = full.detect_one(records[0].path)
    assert result.ok and result.grid is not None and result.unet_calls == len(result.grid.boxes)
    # the exported (float16) student reproduces the fold-free model's score up to rounding
    from train.classifiers import load_classifier, raw_logits

    model = load_classifier(cfg, "student", None)
    tiles = load_tiles(cfg, "clean")
    rows = (tiles["record"] == 0).nonzero().squeeze(1)
    calibrated = full.config.calibration.logit(raw_logits(model, "image+eps", tiles, rows))
    expected = torch.sigmoid(torch.tensor(aggregate(calibrated, chosen["aggregate"])))
    assert result.p_fake == pytest.approx(float(expected), abs=0.02)


def test_diffusion_stage_trains_on_photos_only(tmp_path, tiny_weights):
    from train.diffusion import photo_patches, train_diffusion

    make_corpus(tmp_path / "corpus")
    cfg = load_config(None, workdir=str(tmp_path / "work"), threads=1,
                      corpus={"manifests": [], "photo_dirs": [], "image_dirs": [str(tmp_path / "corpus")], "folds": 2},
                      crops={"tile": TINY_SIZE},
                      diffusion={"train": True, "init": str(tiny_weights / "unet"), "patches": 24, "batch_size": 4,
                                 "max_steps": 6, "checkpoint_every": 3, "sample_steps": 2})
    patches = photo_patches(cfg, exclude_fold=0)
    assert patches.shape == (24, 3, TINY_SIZE, TINY_SIZE) and patches.dtype == torch.uint8
    threads = torch.get_num_threads()
    try:
        unet_dir = train_diffusion(cfg, log=lambda m: None, exclude_fold=0)
    finally:
        torch.set_num_threads(threads)
    assert (unet_dir / "config.json").is_file() and (unet_dir / "scheduler_config.json").is_file()
    history = json.loads((cfg.work.diffusion / "history.json").read_text())
    assert history[-1]["step"] == 6


def test_generate_writes_samples_and_regenerations(tiny_weights, tmp_path):
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


def test_tiles_lever_rescores_large_images_with_more_tiles(recipe, monkeypatch):
    """The 32-tile lever on the tiny corpus (every image counts as 'large' here): the fold students score
    a second cache with more tiles per image, and the lever is kept only past the fold spread."""
    from train import levers

    cfg, _, metrics = recipe
    monkeypatch.setattr(levers, "LARGE_PIXELS", 0)
    records = build_records(cfg.corpus)
    levers.build_lever_caches(cfg, log=lambda m: None)
    wide, narrow = load_tiles(cfg, levers.TILES_CACHE), load_tiles(cfg, "clean")
    assert len(wide["record"]) > len(narrow["record"])  # more tiles per image than the card's max_tiles
    lever = levers.tiles_lever(cfg, records, metrics["models"]["student"])
    assert lever["n_large"] == {"fake": 8, "real": 8}
    assert lever["auc_base"] == pytest.approx(metrics["models"]["student"]["clean"]["auc"])
    assert 0.0 <= lever["auc_lever"] <= 1.0
    assert lever["kept"] == (lever["gain"] > 0 and lever["gain_per_fold_mean"] > lever["gain_per_fold_std"])
    report = levers.lever_report(cfg, records, metrics["models"]["student"])
    assert set(report["measured"]) == {"tiles-32", "student+image-only", "tiles-12", "tiles-8", "early-stop"}
    for key in ("tiles-12", "tiles-8", "early-stop"):  # cheaper budgets: never more UNet calls than the grid
        budget = report["measured"][key]
        assert budget["calls_per_image"]["lever"] <= budget["calls_per_image"]["base"]
        assert budget["within_tolerance"] == (abs(budget["auc_lever"] - budget["auc_base"]) <= 0.005
                                              and abs(budget["tpr_lever"] - budget["tpr_base"]) <= 0.01)
    table = levers.lever_table(report)
    assert "tiles-32" in table and "student+image-only" in table and "not measured" in table


def test_card_only_export_keeps_weights_and_carries_unevaluated_variants(recipe, tmp_path):
    """--card-only: new choices and weights for the evaluated student, the image-only tier's previous
    entry and weights carried over and marked, everything still loadable."""
    import shutil

    from train.export import export_card

    cfg, weights, metrics = recipe
    folder = tmp_path / "weights"
    shutil.copytree(weights, folder)
    before = {p.name: p.read_bytes() for p in folder.glob("*.safetensors")}
    (folder / "distildire.safetensors").unlink()  # written again from this run's student trained on everything
    old = json.loads((folder / "card.json").read_text())
    student_only = {**metrics, "models": {"student": {**metrics["models"]["student"], "threshold": 0.42, "unsure_margin": 0.07}}}
    export_card(cfg, folder, student_only)
    card = json.loads((folder / "card.json").read_text())
    assert card["variants"]["distildire"]["threshold"] == 0.42 and card["variants"]["distildire"]["unsure_margin"] == 0.07
    assert card["variants"]["image-only"]["threshold"] == old["variants"]["image-only"]["threshold"]
    assert card["variants"]["image-only"]["carried_over"] and card["metrics"]["image-only"]["carried_over"]
    after = {p.name: p.read_bytes() for p in folder.glob("*.safetensors")}
    assert after["image-only.safetensors"] == before["image-only.safetensors"]  # the carried-over student is kept
    assert after["distildire.safetensors"] == before["distildire.safetensors"]  # the run's student, as the full export wrote it
    detector = Detector.from_pretrained(str(folder))
    assert detector.threshold == 0.42 and detector.policy.unsure_margin == 0.07
    assert Detector.from_pretrained(str(folder), variant="image-only").threshold == pytest.approx(old["variants"]["image-only"]["threshold"])


def test_the_diffusion_stage_trains_from_scratch_and_resumes(tmp_path):
    """``diffusion.init: ""`` builds a UNet from the recipe's own settings (tile size, widths), trains a few
    steps, writes a diffusers folder with its schedule, and a second run finds it done."""
    from detector.models import load_unet
    from train.diffusion import train_diffusion

    make_corpus(tmp_path / "corpus")
    cfg = load_config(None, **{**TINY, "workdir": str(tmp_path / "work"),
                               "corpus": {"manifests": [], "photo_dirs": [], "image_dirs": [str(tmp_path / "corpus")], "folds": 2},
                               "diffusion": {"train": True, "init": "", "block_out_channels": [32, 32],
                                             "attention_levels": [], "patches": 16, "batch_size": 4, "max_steps": 3,
                                             "checkpoint_every": 2, "sample_steps": 2, "bf16": False}})
    messages = []
    folder = train_diffusion(cfg, log=messages.append)
    unet = load_unet(folder)
    assert unet.config.sample_size == TINY_SIZE and list(unet.config.block_out_channels) == [32, 32]
    assert (folder / "scheduler_config.json").is_file() and any("init: scratch" in m for m in messages)
    history = json.loads((cfg.work.diffusion / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 3] and all(np.isfinite(h["loss"]) for h in history)
    messages.clear()
    train_diffusion(cfg, log=messages.append)
    assert messages == ["diffusion already trained (3 steps, 0.0 min)"]


def test_cheaper_tile_budgets_pick_spread_subsets_of_the_grid():
    from train.levers import tile_subset

    assert tile_subset(4, 4, "checkerboard") == [0, 2, 5, 7, 8, 10, 13, 15]
    assert tile_subset(4, 4, 12) == [0, 1, 3, 4, 5, 7, 8, 10, 11, 12, 14, 15]
    assert tile_subset(2, 3, 12) == list(range(6)) and tile_subset(1, 1, "checkerboard") == [0]


def test_a_distilled_eps_network_goes_through_the_recipe(recipe, tiny_weights, tmp_path):
    """``diffusion.distil_from`` + ``crops.pixels_from``: a narrower UNet learns the diffusion UNet's ε at t = 0 on
    the reused photo crops, the caches keep their pixels with ε recomputed, only the student is retrained, and the
    export puts the distilled network in ``eps-unet/`` beside the diffusion UNet, which keeps the DIRE map; the
    image-only tier is carried over from the weights folder."""
    import shutil

    from detector.features import EpsExtractor
    from detector.models import load_unet

    cfg, weights, _ = recipe
    narrow_cfg = load_config(None, **{
        **TINY, "workdir": str(tmp_path / "narrow"), "corpus": cfg.to_dict()["corpus"],
        "crops": {**TINY["crops"], "pixels_from": cfg.workdir},
        "diffusion": {"distil_from": str(tiny_weights / "unet"), "block_out_channels": [16, 32], "attention_levels": [],
                      "norm_num_groups": 16, "distil_steps": 3, "batch_size": 8, "checkpoint_every": 2},
        "classifier": {**TINY["classifier"], "kd_weight": 0.0, "learning_curve": [], "variants": ["student"]}})
    shutil.copytree(weights, tmp_path / "weights")
    threads = torch.get_num_threads()
    try:
        metrics = run(narrow_cfg, tmp_path / "weights", log=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    assert "student" in metrics["models"] and "image-only" not in metrics["models"]
    distilled = json.loads((narrow_cfg.work.diffusion / "distil.json").read_text())
    assert distilled["steps"] == 3 and distilled["held_out_relative_error"] > 0
    source, reused = load_crops(cfg), load_crops(narrow_cfg)
    assert torch.equal(source["pixels"], reused["pixels"]) and torch.equal(source["label"], reused["label"])
    assert not torch.equal(source["eps"], reused["eps"])  # ε of the distilled network
    assert torch.equal(load_tiles(cfg, "clean")["pixels"], load_tiles(narrow_cfg, "clean")["pixels"])

    card = json.loads((tmp_path / "weights" / "card.json").read_text())
    entry = card["variants"]["distildire"]
    assert (entry["unet"], entry["dire_unet"]) == ("eps-unet", "unet") and "distilled" in entry["eps_network"]
    trade = card["eps_network"]  # what the distilled network trades, stated in the card and on the page
    assert trade["gflop_per_16_tiles"] > 0 and trade["held_out_relative_eps_error"] == distilled["held_out_relative_error"]
    from detector.card import card_markdown

    assert trade["trade"] in card_markdown(str(tmp_path / "weights"))
    from safetensors import safe_open

    with safe_open(str(tmp_path / "weights" / "eps-unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())  # noqa: SIM118 (not a dict)
    assert card["variants"]["image-only"]["carried_over"] and card["metrics"]["image-only"]["carried_over"]
    detector = Detector.from_pretrained(str(tmp_path / "weights"))
    assert tuple(detector.unet.config.block_out_channels) == (16, 32)
    assert "a UNet distilled from a diffusion UNet" in detector.config.summary_lines()[0]  # said where it is shown
    result = detector.detect([build_records(cfg.corpus)[0].path], with_dire=True)[0]
    assert result.ok and result.dire is not None
    diffusion = load_unet(tiny_weights / "unet")  # DIRE is the diffusion UNet's (exported in float16)
    x = torch.from_numpy(np.ascontiguousarray(result.image)).permute(2, 0, 1)[None].float() / 127.5 - 1
    expected, _ = EpsExtractor(diffusion.half().float()).dire(x)
    assert np.abs(result.reconstruction.astype(int) - expected[0].astype(int)).mean() < 2

    other = load_config(None, **{**narrow_cfg.to_dict(), "workdir": str(tmp_path / "other")})
    other.work.records.parent.mkdir(parents=True)
    other.work.records.write_text(json.dumps(json.loads(narrow_cfg.work.records.read_text())[:-1]))  # one image fewer
    from train.crops import build_training_crops

    with pytest.raises(ValueError, match="another corpus table"):
        build_training_crops(other, log=lambda m: None)

    from train.compare import compare

    same = compare(cfg, cfg)  # a recipe against itself: no difference, and the rule keeps it
    assert same["delta"] == {"auc": 0.0, "tpr_at_card_threshold": 0.0} and same["adopt"]
    assert same["bootstrap_95"]["auc"] == (0.0, 0.0)
    versus = compare(cfg, narrow_cfg)
    assert versus["adopt"] == (versus["delta"]["auc"] >= -0.005 and versus["delta"]["tpr_at_card_threshold"] >= -0.01)
    assert versus["auc"]["candidate"] == pytest.approx(metrics["models"]["student"]["clean"]["auc"])


def test_tpr_at_a_fixed_false_positive_rate():
    from train.compare import operating_point, paired_bootstrap, tpr_at_fpr

    y = np.array([0] * 10 + [1] * 4)
    p = np.array([0.1 * i for i in range(10)] + [0.95, 0.85, 0.5, 0.05])
    assert tpr_at_fpr(y, p, 0.10) == 0.5  # one photo of ten (0.9) may be flagged: fakes above 0.8 count
    assert tpr_at_fpr(y, p, 0.0) == 0.25  # none may be: only the fake above every photo
    assert operating_point(y, p, 0.8) == (0.5, 0.2)
    better = np.where(y == 1, 1.0, p)
    low, high = paired_bootstrap(y, p, better, lambda yy, pp: tpr_at_fpr(yy, pp, 0.10), rounds=200)
    assert 0 < low <= high


def test_bundled_names_the_diffusion_unet_when_the_weights_carry_a_distilled_eps_network(tmp_path, monkeypatch, tiny_weights):
    """``diffusion.init`` / ``distil_from: "bundled"`` is the diffusion model (``unet/``), never ``eps-unet/``: a
    recipe re-run or re-exported after a distilled network shipped must not distil from, or ship as the DIRE
    UNet, the distilled network itself."""
    import shutil

    from detector.loading import load_student
    from detector.models import load_unet
    from detector.registry import resolve_weights, save_weights
    from train.common import unet_folder

    spec = resolve_weights(str(tiny_weights))
    shutil.copytree(tiny_weights, tmp_path / "plain")
    layered = save_weights(tmp_path / "layered", {"distildire": (load_student(spec.student), "image+eps")},
                           unet=load_unet(spec.unet), eps_unet=load_unet(spec.unet))
    for folder, expected in ((tmp_path / "plain", "unet"), (layered, "unet")):
        monkeypatch.setattr("detector.registry.resolve_weights", lambda name, f=folder: resolve_weights(str(f)))
        assert unet_folder("bundled") == folder / expected
