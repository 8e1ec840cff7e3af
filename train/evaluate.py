"""Stage 5 — out-of-fold evaluation, and the choices made on it (aggregation rule, calibration, threshold).

Every image is scored by the fold model that never saw its generator family or photo source, through
the inference tiles (``train.crops``), so the figures measure transfer to unseen sources:

* per held-out family: AUC, AP and TPR at the threshold; per photo source: FPR;
* overall (pooled out-of-fold, and the spread over folds): AUC, AP, TPR, FPR, accuracy, ECE;
* conditions: JPEG q75/q50 and 0.5× rescale on both classes (AUC and its drop); photos after blur,
  median, non-local-means denoising and 0.5× downscale (FPR at the threshold); the format trap —
  losslessly stored images re-encoded as JPEG q95 — as the mean |Δp| per class;
* beside every figure, the low-level baseline: a logistic regression on three image statistics
  (sharpness = variance of the Laplacian, mean |ε|, mean saturation), trained out-of-fold the same way.

Choices, all on out-of-fold CLEAN scores: the aggregation rule (best AUC), a temperature and bias
(p = σ(z / T + b), fitted by logistic regression on the image logits) and the threshold RULE, validated
out of sample by fold rotation (``train.threshold``: chosen on three folds, measured on the fourth's
unseen families and photo sources), with an unsure band covering the thresholds the rotations and
the single held-out folds give.
Writes ``eval/metrics.json``, ``eval/calibration.png`` and ``eval/families.png``.

    python -m train.evaluate --config train/configs/bundled.json
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from detector.tiling import aggregate

from .common import to_unit, write_json
from .config import RecipeConfig, config_parser, load_config
from .corpus import Record, corpus_records
from .crops import load_tiles
from .levers import lever_report, lever_table
from .threshold import RULES, Scores, compare_rules, fold_thresholds, rotate, unsure_band

BASELINE = "baseline-3-features"
# ------------------------------------------------------------------------------------ scoring
def oof_tile_logits(cfg: RecipeConfig, variant: str) -> dict[str, dict[int, list[float]]]:
    """condition → record → raw tile logits, gathered from the fold models' logs (each record once)."""
    out: dict[str, dict[int, list[float]]] = {}
    for fold in range(cfg.corpus.folds):
        path = cfg.work.classifier_log(variant, fold)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: train {variant} on fold {fold} first")
        for condition, per_record in json.loads(path.read_text())["held_out_tile_logits"].items():
            out.setdefault(condition, {}).update({int(r): z for r, z in per_record.items()})
    return out


def image_logits(tile_logits: dict[int, list[float]], rule: str) -> dict[int, float]:
    return {r: aggregate(z, rule) for r, z in tile_logits.items()}


def baseline_features(tiles: dict[str, torch.Tensor]) -> dict[int, np.ndarray]:
    """Per record: [sharpness, mean |ε|, saturation] over its inference tiles."""
    pixels = tiles["pixels"].float() / 255.0
    gray = (0.299 * pixels[:, 0] + 0.587 * pixels[:, 1] + 0.114 * pixels[:, 2])[:, None]
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    lap = torch.nn.functional.conv2d(gray, kernel).flatten(1)
    high, low = pixels.max(1).values, pixels.min(1).values
    saturation = ((high - low) / high.clamp_min(1e-6)).flatten(1).mean(1)
    per_tile = torch.stack([lap.var(1), tiles["eps"].float().abs().flatten(1).mean(1), saturation], 1)
    out = {}
    owners = tiles["record"]
    for record in owners.unique().tolist():
        f = per_tile[owners == record].mean(0).numpy().astype(np.float64)
        out[record] = np.array([np.log(f[0] + 1e-8), f[1], f[2]])
    return out


def baseline_logits(cfg: RecipeConfig, records: list[Record]) -> dict[str, dict[int, float]]:
    """The three-feature logistic regression, out-of-fold: fitted on the other folds' clean images."""
    features = {c: baseline_features(load_tiles(cfg, c)) for c in cfg.eval.conditions if cfg.work.tiles(c).is_file()}
    clean = features["clean"]
    out: dict[str, dict[int, float]] = {c: {} for c in features}
    for fold in range(cfg.corpus.folds):
        train = [r for r in clean if records[r].fold != fold]
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        model.fit(np.stack([clean[r] for r in train]), [records[r].label for r in train])
        for condition, feats in features.items():
            held = [r for r in feats if records[r].fold == fold]
            if held:
                z = model.decision_function(np.stack([feats[r] for r in held]))
                out[condition].update(dict(zip(held, z.tolist())))
    return out


# ------------------------------------------------------------------------------------ metrics
def fit_calibration(logits: np.ndarray, labels: np.ndarray) -> dict:
    """Temperature and bias for p = σ(z / T + b), by (nearly unregularised) logistic regression."""
    model = LogisticRegression(C=1e4, max_iter=1000).fit(logits[:, None], labels)
    slope = float(model.coef_[0, 0])
    if slope <= 0:
        return {"temperature": 1.0, "bias": 0.0}
    return {"temperature": 1.0 / slope, "bias": float(model.intercept_[0])}


def calibrated(logits: np.ndarray, calibration: dict) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(logits / calibration["temperature"] + calibration["bias"])))


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    return float(sum((which == b).mean() * abs(p[which == b].mean() - y[which == b].mean()) for b in range(bins) if (which == b).any()))


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    pred = p >= threshold
    out = {"n_fake": int(y.sum()), "n_real": int((1 - y).sum())}
    if len(set(y.tolist())) == 2:
        out["auc"] = float(roc_auc_score(y, p))
        out["ap"] = float(average_precision_score(y, p))
    if y.any():
        out["tpr"] = float(pred[y == 1].mean())
    if (y == 0).any():
        out["fpr"] = float(pred[y == 0].mean())
    out["acc"] = float((pred == (y == 1)).mean())
    return out


def model_report(records: list[Record], logits: dict[str, dict[int, float]], calibration: dict, threshold: float,
                 folds: int) -> dict:
    """Every figure of one model from its out-of-fold image logits per condition."""
    clean = logits["clean"]
    ids = sorted(clean)
    y = np.array([records[r].label for r in ids])
    p = calibrated(np.array([clean[r] for r in ids]), calibration)
    p_of = dict(zip(ids, p))
    report = {"clean": {**binary_metrics(y, p, threshold), "ece": expected_calibration_error(y, p)}}
    per_fold = [binary_metrics(y[mask], p[mask], threshold) for mask in
                (np.array([records[r].fold == k for r in ids]) for k in range(folds))]
    report["clean"]["auc_per_fold"] = [round(m.get("auc", float("nan")), 4) for m in per_fold]
    reals = [r for r in ids if records[r].label == 0]
    p_reals = np.array([p_of[r] for r in reals])
    report["families"] = {}
    for family in sorted({records[r].group for r in ids if records[r].label == 1}):
        members = [r for r in ids if records[r].label == 1 and records[r].group == family]
        yf = np.r_[np.ones(len(members)), np.zeros(len(reals))]
        pf = np.r_[[p_of[r] for r in members], p_reals]
        m = binary_metrics(yf, pf, threshold)
        report["families"][family] = {"n": len(members), "fold": records[members[0]].fold, "auc": m.get("auc"),
                                      "ap": m.get("ap"), "tpr": m.get("tpr"),
                                      "found": int(sum(p_of[r] >= threshold for r in members))}
    report["photo_sources"] = {}
    for source in sorted({records[r].source for r in reals}):
        members = [r for r in reals if records[r].source == source]
        flagged = int(sum(p_of[r] >= threshold for r in members))
        report["photo_sources"][source] = {"n": len(members), "flagged": flagged, "fpr": flagged / len(members)}
    report["conditions"] = {}
    for condition, values in logits.items():
        if condition == "clean":
            continue
        cids = sorted(values)
        yc = np.array([records[r].label for r in cids])
        pc = calibrated(np.array([values[r] for r in cids]), calibration)
        entry = binary_metrics(yc, pc, threshold)
        if "auc" in entry:
            same = binary_metrics(yc, np.array([p_of[r] for r in cids]), threshold)
            entry["auc_drop"] = same["auc"] - entry["auc"]
        delta = pc - np.array([p_of[r] for r in cids])
        entry["mean_delta_p"] = {name: float(delta[yc == label].mean()) for name, label in (("real", 0), ("fake", 1)) if (yc == label).any()}
        report["conditions"][condition] = entry
    return report


def format_trap(records: list[Record], logits: dict[str, dict[int, float]], calibration: dict) -> dict:
    """Losslessly stored images re-encoded as JPEG q95: mean |Δp| and mean Δp per class."""
    if "jpeg_q95" not in logits:
        return {}
    out = {}
    for name, label in (("real", 0), ("fake", 1)):
        ids = [r for r in logits["jpeg_q95"] if records[r].label == label and _lossless(records[r])]
        if not ids:
            continue
        before = calibrated(np.array([logits["clean"][r] for r in ids]), calibration)
        after = calibrated(np.array([logits["jpeg_q95"][r] for r in ids]), calibration)
        out[name] = {"n": len(ids), "mean_abs_delta_p": float(np.abs(after - before).mean()),
                     "mean_delta_p": float((after - before).mean())}
    return out


def _lossless(record: Record) -> bool:
    return Path(record.path).suffix.lower() in (".png", ".webp", ".bmp", ".tif", ".tiff")


def choose_rule(records: list[Record], tile_logits: dict[int, list[float]], rules: list[str]) -> tuple[str, dict]:
    """The aggregation with the best pooled out-of-fold AUC on clean images."""
    ids = sorted(tile_logits)
    y = np.array([records[r].label for r in ids])
    aucs = {rule: float(roc_auc_score(y, [aggregate(tile_logits[r], rule) for r in ids])) for rule in rules}
    return max(aucs, key=aucs.get), aucs


def evaluate_variant(cfg: RecipeConfig, records: list[Record], variant: str) -> dict:
    tiles = oof_tile_logits(cfg, variant)
    rule, rule_aucs = choose_rule(records, tiles["clean"], cfg.eval.aggregations)
    logits = {c: image_logits(v, rule) for c, v in tiles.items()}
    return finish_report(cfg, records, logits, {"aggregate": rule, "aggregation_auc": rule_aucs})


def threshold_rule_report(cfg: RecipeConfig, records: list[Record], p_of: dict[int, float]) -> dict:
    """Every candidate threshold rule validated by fold rotation (``train.threshold``) on calibrated
    out-of-fold p(fake), the shipped one (``eval.threshold_rule``; "auto": by the fixed criterion) and
    its unsure band."""
    ids = sorted(p_of)
    scores = Scores(np.array([p_of[r] for r in ids]), np.array([records[r].label for r in ids]),
                    np.array([records[r].fold for r in ids]), np.array([records[r].source for r in ids]))
    rules = list(dict.fromkeys([*cfg.eval.threshold_rules, *([] if cfg.eval.threshold_rule == "auto" else [cfg.eval.threshold_rule])]))
    table = compare_rules(scores, rules, cfg.eval.max_fpr)
    if cfg.eval.threshold_rule != "auto":
        table["chosen"] = cfg.eval.threshold_rule
    chosen = table["rules"][table["chosen"]]
    table["threshold"] = chosen["threshold"]
    table["fold_thresholds"] = fold_thresholds(scores, RULES[table["chosen"]])
    table["unsure_margin"], table["unsure_above"] = unsure_band(
        chosen["threshold"], [r["threshold"] for r in chosen["rotations"]] + table["fold_thresholds"])
    return table


def finish_report(cfg: RecipeConfig, records: list[Record], logits: dict[str, dict[int, float]], extra: dict) -> dict:
    """Calibration and threshold rule from the clean out-of-fold logits, then every figure."""
    ids = sorted(logits["clean"])
    y = np.array([records[r].label for r in ids])
    z = np.array([logits["clean"][r] for r in ids])
    calibration = fit_calibration(z, y)
    p = calibrated(z, calibration)
    rule = threshold_rule_report(cfg, records, dict(zip(ids, p.tolist())))
    threshold = rule["threshold"]
    report = {**extra, "calibration": calibration, "threshold": threshold, "unsure_margin": rule["unsure_margin"],
              "unsure_above": rule["unsure_above"],
              "threshold_rule": rule, **model_report(records, logits, calibration, threshold, cfg.corpus.folds),
              "format_trap": format_trap(records, logits, calibration)}
    report["scores"] = {str(r): float(pr) for r, pr in zip(ids, p)}
    return report


def learning_curve(cfg: RecipeConfig, records: list[Record], student: dict) -> list[dict]:
    """Out-of-fold AUC, AP and TPR of fold students trained on a share of their training sources (same
    folds, same seed, nested shares), beside the full student: is data still the limit?"""
    from .classifiers import run_name

    points = []
    for fraction in sorted({*cfg.classifier.learning_curve, 1.0}):
        name = run_name("student", fraction)
        if not all(cfg.work.classifier_log(name, k).is_file() for k in range(cfg.corpus.folds)):
            continue
        logs = [json.loads(cfg.work.classifier_log(name, k).read_text()) for k in range(cfg.corpus.folds)]
        clean = image_logits(oof_tile_logits(cfg, name)["clean"], student["aggregate"])
        ids = sorted(clean)
        y = np.array([records[r].label for r in ids])
        z = np.array([clean[r] for r in ids])
        folds = np.array([records[r].fold for r in ids])
        shipped = RULES[student["threshold_rule"]["chosen"]]
        scores = Scores(calibrated(z, fit_calibration(z, y)), y, folds, np.array([records[r].source for r in ids]))
        held = rotate(scores, shipped)
        at5 = RULES["pooled-fpr-5"](scores)
        points.append({
            "fraction": fraction, "train_images_mean": float(np.mean([g.get("train_images", np.nan) for g in logs])),
            "train_sources_mean": float(np.mean([len(g.get("train_sources", [])) or np.nan for g in logs])),
            "auc": float(roc_auc_score(y, z)), "ap": float(average_precision_score(y, z)),
            "auc_per_fold": [round(float(roc_auc_score(y[folds == k], z[folds == k])), 4) for k in range(cfg.corpus.folds)],
            "tpr_at_fpr_5": float((scores.p[y == 1] >= at5).mean()),
            "heldout_rule_tpr": float(np.mean([h["tpr"] for h in held])),
            "heldout_rule_fpr": float(np.mean([h["fpr"] for h in held]))})
    return points


def learning_curve_table(points: list[dict]) -> str:
    lines = ["learning curve (student, out-of-fold; share of each fold's training sources, nested, same seed):",
             f"  {'share':>5} {'images':>7} {'sources':>7} {'AUC':>6} {'AP':>6} {'TPR@5%':>7} {'held-out rule TPR/FPR':>22}  AUC per fold"]
    for p in points:
        lines.append(f"  {p['fraction']:>5.2f} {p['train_images_mean']:>7.0f} {p['train_sources_mean']:>7.1f} {p['auc']:>6.3f} "
                     f"{p['ap']:>6.3f} {p['tpr_at_fpr_5']:>7.3f} {p['heldout_rule_tpr']:>12.3f} / {p['heldout_rule_fpr']:.3f}  "
                     f"{p['auc_per_fold']}")
    return "\n".join(lines)


def plot_learning_curve(points: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.4, 3.6), layout="constrained")
    ax = fig.subplots()
    x = [p["train_images_mean"] for p in points]
    lo = [min(p["auc_per_fold"]) for p in points]
    hi = [max(p["auc_per_fold"]) for p in points]
    ax.fill_between(x, lo, hi, color="C0", alpha=0.15, label="AUC, range over held-out folds")
    ax.plot(x, [p["auc"] for p in points], "o-", color="C0", label="ROC-AUC (pooled out-of-fold)")
    ax.plot(x, [p["heldout_rule_tpr"] for p in points], "s--", color="C3", label="TPR at the shipped rule (held-out)")
    ax.plot(x, [p["tpr_at_fpr_5"] for p in points], "^:", color="C2", label="TPR at 5% FPR (pooled)")
    for p, xi in zip(points, x):
        ax.annotate(f"{p['fraction']:.0%}", (xi, p["auc"]), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    ax.set(xlabel="training images per fold model (share of training sources)", ylabel="out-of-fold score", ylim=(0, 1),
           title="Learning curve (leave-source-out)")
    ax.legend(fontsize=7, loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


@torch.inference_mode()
def own_generator_report(cfg: RecipeConfig, records: list[Record], reports: dict, per_fold: int = 24) -> dict:
    """The earlier test split, kept as a check: fakes from the recipe's diffusion model — unconditional DDIM
    samples and SDEdit regenerations of native crops of held-out photos — against those photo crops,
    each scored by the fold model that never saw the photos (one tile per image)."""
    import random

    from .classifiers import VARIANTS, load_classifier, raw_logits
    from .common import eps_extractor, seed_everything
    from .crops import record_image
    from .sampling import generate_samples, regenerate

    extractor, diffusion = eps_extractor(cfg), eps_extractor(cfg, "diffusion")
    size = cfg.crops.tile
    generator = seed_everything(cfg.crops.seed + 7)
    rng = random.Random(cfg.crops.seed + 7)
    pixels, kinds, folds = [], [], []
    for fold in range(cfg.corpus.folds):
        photos = [r for r in records if r.label == 0 and r.fold == fold]
        crops = []
        for record in rng.sample(photos, min(per_fold, len(photos))):
            image = record_image(record)
            left, top = rng.randint(0, image.width - size), rng.randint(0, image.height - size)
            crops.append(torch.from_numpy(np.asarray(image.crop((left, top, left + size, top + size))).transpose(2, 0, 1).copy()))
        reals = torch.stack(crops)
        fakes = regenerate(diffusion.unet, diffusion.ddim.schedule, reals, generator, bf16=True)
        samples = next(generate_samples(diffusion.unet, diffusion.ddim.schedule, len(reals), size, 25, generator,
                                        len(reals), bf16=True))
        for batch, kind in ((reals, "real"), (fakes, "regen"), (samples, "sample")):
            pixels.append(batch)
            kinds += [kind] * len(batch)
            folds += [fold] * len(batch)
    pixels_t = torch.cat(pixels)
    tensors = {"pixels": pixels_t, "eps": extractor(to_unit(pixels_t)).half()}
    kinds_a, folds_a = np.array(kinds), np.array(folds)
    y = (kinds_a != "real").astype(int)
    out = {"n": {k: int((kinds_a == k).sum()) for k in ("real", "regen", "sample")}}
    for variant, report in reports.items():
        z = np.zeros(len(kinds))
        for fold in range(cfg.corpus.folds):
            rows = torch.from_numpy(np.nonzero(folds_a == fold)[0])
            model = load_classifier(cfg, variant, fold)
            z[rows.numpy()] = raw_logits(model, VARIANTS[variant].inputs, tensors, rows).numpy()
        p = calibrated(z, report["calibration"])
        entry = binary_metrics(y, p, report["threshold"])
        for kind in ("regen", "sample"):
            keep = kinds_a != ("sample" if kind == "regen" else "regen")
            entry[kind] = binary_metrics(y[keep], p[keep], report["threshold"])
        out[variant] = entry
    return out


def evaluate(cfg: RecipeConfig, variants: list[str] | None = None, log=print) -> dict:
    records = corpus_records(cfg)
    variants = variants or [v for v in ("student", "image-only") if cfg.work.classifier_log(v, 0).is_file()]
    report = {"folds": cfg.corpus.folds, "models": {}}
    for variant in variants:
        report["models"][variant] = evaluate_variant(cfg, records, variant)
    if variants:
        report["own_generator"] = own_generator_report(cfg, records, {v: report["models"][v] for v in variants})
        log("own generator (out-of-fold): " + "; ".join(
            f"{v}: AUC {m.get('auc', float('nan')):.3f}, TPR regen {m['regen'].get('tpr', float('nan')):.2f}, "
            f"TPR sample {m['sample'].get('tpr', float('nan')):.2f}" for v, m in report["own_generator"].items() if v != "n"))
    report["models"][BASELINE] = finish_report(cfg, records, baseline_logits(cfg, records), {})
    for name, m in report["models"].items():
        log(summary_line(name, m))
    if "student" in report["models"]:
        report["learning_curve"] = learning_curve(cfg, records, report["models"]["student"])
        if len(report["learning_curve"]) > 1:
            log(learning_curve_table(report["learning_curve"]))
            plot_learning_curve(report["learning_curve"], cfg.work.eval / "learning_curve.png")
        report["levers"] = lever_report(cfg, records, report["models"]["student"])
        log(lever_table(report["levers"]))
    for name, m in report["models"].items():
        log(rule_table(name, m))
    for name, m in report["models"].items():
        log(family_table(name, m))
    write_json(cfg.work.metrics, report)
    plot_report(report, records, cfg.work.eval)
    return report


def summary_line(name: str, m: dict) -> str:
    c = m["clean"]
    cond = m["conditions"]
    smooth = " / ".join(f"{cond[k]['fpr']:.2f}" for k in ("blur_1.0", "median_3", "denoise", "rescale_0.5x") if k in cond)
    trap = " / ".join(f"{v['mean_abs_delta_p']:.3f}" for v in m.get("format_trap", {}).values())
    return (f"{name:<22} AUC {c.get('auc', float('nan')):.4f} (folds {c['auc_per_fold']}) AP {c.get('ap', float('nan')):.4f} "
            f"TPR {c['tpr']:.3f} FPR {c['fpr']:.3f} ECE {c['ece']:.3f} | jpeg75 drop "
            f"{cond.get('jpeg_q75', {}).get('auc_drop', float('nan')):+.3f} | smoothed-photo FPR {smooth} | trap |Δp| {trap}")


def family_table(name: str, m: dict) -> str:
    """Per held-out family (each against all out-of-fold photos) and per photo source, at the threshold."""
    lines = [f"{name}: held-out families (vs all photos; FPR {m['clean']['fpr']:.3f} at threshold {m['threshold']:.3f})",
             f"  {'family':<22} {'n':>4} {'fold':>4} {'AUC':>6} {'AP':>6} {'TPR':>6} {'found':>8}"]
    for family, f in sorted(m["families"].items(), key=lambda kv: -kv[1]["n"]):
        lines.append(f"  {family:<22} {f['n']:>4} {f['fold']:>4} {f['auc']:>6.3f} {f['ap']:>6.3f} {f['tpr']:>6.3f} "
                     f"{f['found']:>3} of {f['n']:<3}")
    lines.append("  photo sources (flagged at the threshold): " + ", ".join(
        f"{k} {v['flagged']} of {v['n']} ({v['fpr']:.2f})" for k, v in m["photo_sources"].items()))
    return "\n".join(lines)


def rule_table(name: str, m: dict) -> str:
    """The threshold rules, each chosen on three folds and measured on the fourth's unseen sources."""
    t = m["threshold_rule"]
    lines = [f"{name}: threshold rules, chosen on 3 folds, measured on the held-out fold (criterion: {t['criterion']})",
             f"  {'rule':<20} {'TPR mean±sd':>12} {'min':>5} {'FPR mean±sd':>12} {'max':>5} {'thr (all)':>9}  thresholds per held-out fold"]
    for rule, r in t["rules"].items():
        mark = " <- shipped" if rule == t["chosen"] else ""
        lines.append(f"  {rule:<20} {r['tpr_mean']:>6.3f}±{r['tpr_std']:.3f} {r['tpr_min']:>5.2f} "
                     f"{r['fpr_mean']:>6.3f}±{r['fpr_std']:.3f} {r['fpr_max']:>5.2f} {r['threshold']:>9.3f}  "
                     + " ".join(f"{x['threshold']:.3f}" for x in r["rotations"]) + mark)
    lines.append(f"  shipped: {t['chosen']} ({t['rules'][t['chosen']]['rule']}), threshold {t['threshold']:.3f}, "
                 f"unsure between {t['threshold'] - t['unsure_margin']:.3f} and {t['threshold'] + t['unsure_above']:.3f} "
                 f"(each held-out fold's own threshold: {' '.join(f'{x:.3f}' for x in t['fold_thresholds'])})")
    return "\n".join(lines)


def plot_report(report: dict, records: list[Record], out: Path) -> None:
    """A reliability diagram and a per-family bar chart (AUC and TPR at the threshold)."""
    from matplotlib.figure import Figure

    out.mkdir(parents=True, exist_ok=True)
    models = report["models"]
    fig = Figure(figsize=(5.2, 5), layout="constrained")
    ax = fig.subplots()
    edges = np.linspace(0, 1, 11)
    for name, m in models.items():
        ids = [int(r) for r in m["scores"]]
        y = np.array([records[r].label for r in ids])
        p = np.array(list(m["scores"].values()))
        which = np.clip(np.digitize(p, edges[1:-1]), 0, 9)
        xs = [p[which == b].mean() for b in range(10) if (which == b).sum() >= 5]
        ys = [y[which == b].mean() for b in range(10) if (which == b).sum() >= 5]
        ax.plot(xs, ys, marker="o", label=f"{name} (ECE {m['clean']['ece']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
    ax.set(xlabel="predicted p(fake)", ylabel="observed fraction generated", title="Calibration (out-of-fold, clean)")
    ax.legend(fontsize=8, loc="upper left")
    fig.savefig(out / "calibration.png", dpi=120)

    families = sorted(next(iter(models.values()))["families"], key=lambda f: -next(iter(models.values()))["families"][f]["n"])
    fig = Figure(figsize=(max(8, 0.55 * len(families) + 2), 7), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    width = 0.8 / len(models)
    x = np.arange(len(families))
    for i, (name, m) in enumerate(models.items()):
        for ax, key in zip(axes, ("auc", "tpr")):
            ax.bar(x + i * width - 0.4 + width / 2, [m["families"][f][key] or 0 for f in families], width, label=name)
    axes[0].set(ylabel="ROC-AUC vs all photos", ylim=(0, 1), title="Held-out generator families (out-of-fold)")
    axes[1].set(ylabel="TPR at the threshold", ylim=(0, 1))
    axes[0].axhline(0.5, color="grey", lw=0.6, ls="--")
    axes[1].set_xticks(x, [f"{f} ({next(iter(models.values()))['families'][f]['n']})" for f in families], rotation=45, ha="right", fontsize=8)
    axes[0].legend(fontsize=8, ncols=3)
    fig.savefig(out / "families.png", dpi=110)


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--variants", nargs="*")
    args = parser.parse_args()
    evaluate(load_config(args.config), args.variants, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
