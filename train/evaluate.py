"""Stage 8 — evaluate on the test split (photos never seen in training), through the ``Detector`` and
the exported weights, i.e. exactly what users run:

* ACC, AP, ROC-AUC, FPR and TPR at the threshold, expected calibration error, per fake kind
  (unconditional samples vs SDEdit regenerations);
* robustness: JPEG q75, JPEG q50 and 0.5× downscale applied to both classes (ε recomputed from the
  degraded pixels, as at inference);
* the format trap: the same real test patches as PNG and as JPEG q95 — mean p_fake shift;
* models: DIRE teacher (clean only: its DIRE maps come from the cache), DistilDIRE student,
  image-only student, and the image-only baseline trained without distillation.

Writes ``workdir/eval/metrics.json`` plus ROC and score-histogram plots.

    python -m train.evaluate --config train/configs/bundled.json
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    roc_auc_score,
    roc_curve,
)

from detector import Detector

from .cache import load_cache
from .classifiers import Batcher, load_classifier, predict
from .common import set_threads, write_json
from .config import RecipeConfig, config_parser, load_config

CONDITIONS = ("clean", "jpeg75", "jpeg50", "resize0.5")


def degrade(path: Path, condition: str) -> Image.Image | bytes:
    """The test image as a user would upload it after the given degradation."""
    if condition == "clean":
        return path.read_bytes()
    image = Image.open(path).convert("RGB")
    if condition.startswith("jpeg"):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(condition[4:]))
        return buffer.getvalue()
    if condition == "resize0.5":
        return image.resize((image.width // 2, image.height // 2), Image.BILINEAR, reducing_gap=None)
    raise ValueError(condition)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            ece += members.mean() * abs(p[members].mean() - y[members].mean())
    return float(ece)


def score_metrics(y: np.ndarray, p: np.ndarray, kinds: list[str], threshold: float) -> dict:
    pred = (p >= threshold).astype(int)
    reals = y == 0
    out = {
        "acc": float(accuracy_score(y, pred)),
        "ap": float(average_precision_score(y, p)),
        "auc": float(roc_auc_score(y, p)),
        "fpr": float(pred[reals].mean()),
        "tpr": float(pred[~reals].mean()),
        "ece": expected_calibration_error(y, p),
        "mean_p_real": float(p[reals].mean()),
        "per_kind": {},
    }
    for kind in sorted({k for k, label in zip(kinds, y) if label == 1}):
        members = reals | np.array([k == kind for k in kinds])
        out["per_kind"][kind] = {
            "ap": float(average_precision_score(y[members], p[members])),
            "tpr": float(pred[np.array([k == kind for k in kinds])].mean()),
        }
    return out


def detector_scores(detector: Detector, paths: list[Path], condition: str, batch: int = 64) -> np.ndarray:
    scores = []
    for start in range(0, len(paths), batch):
        results = detector.detect([degrade(p, condition) for p in paths[start : start + batch]])
        bad = [r.error for r in results if not r.ok]
        if bad:
            raise RuntimeError(f"evaluation input failed: {bad[0]}")
        scores.extend(r.p_fake for r in results)
    return np.array(scores)


def evaluate(cfg: RecipeConfig, weights_dir: str | Path, baseline_file: str | Path | None = None, log=print) -> dict:
    set_threads(cfg.threads)
    cache, meta = load_cache(cfg, "test")
    paths = [Path(m["path"]) for m in meta]
    y = np.array([m["label"] for m in meta])
    kinds = [m["kind"] for m in meta]
    size = cfg.data.patch_size
    models = {
        "distildire": Detector.from_pretrained(str(weights_dir)),
        "image-only": Detector.from_pretrained(str(weights_dir), variant="image-only"),
    }
    if baseline_file:
        models["baseline"] = Detector.from_files(baseline_file, image_size=size, name="baseline")
    threshold = models["distildire"].threshold
    report: dict = {"n_test": {"real": int((y == 0).sum()), "fake": int((y == 1).sum())}, "threshold": threshold,
                    "models": {}, "scores": {}}
    teacher_probs = predict(load_classifier(cfg, "teacher"), Batcher(cfg, "teacher", cache, None, None), len(y))
    report["models"]["dire-teacher"] = {"clean": score_metrics(y, teacher_probs, kinds, threshold),
                                        "unet_calls": 2 * cfg.cache.dire_steps}
    report["scores"]["dire-teacher"] = teacher_probs.round(5).tolist()
    for name, detector in models.items():
        entry = {"unet_calls": detector.unet_calls_per_image}
        for condition in CONDITIONS:
            p = detector_scores(detector, paths, condition)
            entry[condition] = score_metrics(y, p, kinds, threshold)
            if condition == "clean":
                report["scores"][name] = p.round(5).tolist()
            log(f"{name:<11} {condition:<9} AP {entry[condition]['ap']:.4f} ACC {entry[condition]['acc']:.4f} "
                f"FPR {entry[condition]['fpr']:.3f}")
        real_paths = [p for p, label in zip(paths, y) if label == 0]
        as_png = detector_scores(detector, real_paths, "clean")
        as_jpeg95 = np.array([r.p_fake for r in detector.detect([_jpeg_bytes(p, 95) for p in real_paths])])
        entry["format_trap"] = {"mean_p_png": float(as_png.mean()), "mean_p_jpeg95": float(as_jpeg95.mean()),
                                "shift": float(as_jpeg95.mean() - as_png.mean())}
        report["models"][name] = entry
    report["labels"] = y.tolist()
    report["kinds"] = kinds
    out = Path(cfg.workdir) / "eval"
    write_json(out / "metrics.json", report)
    plot_report(report, out)
    return report


def _jpeg_bytes(path: Path, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def plot_report(report: dict, out: Path) -> None:
    """ROC curves of every model, and score histograms (reals / samples / regenerations) per model."""
    from matplotlib.figure import Figure

    y = np.array(report["labels"])
    kinds = np.array(report["kinds"])
    fig = Figure(figsize=(5, 5), layout="constrained")
    ax = fig.subplots()
    for name, scores in report["scores"].items():
        fpr, tpr, _ = roc_curve(y, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y, scores):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls="--")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the test split (clean)")
    ax.legend(loc="lower right", fontsize=8)
    fig.savefig(out / "roc.png", dpi=120)

    names = list(report["scores"])
    fig = Figure(figsize=(4 * len(names), 3), layout="constrained")
    for ax, name in zip(fig.subplots(1, len(names), squeeze=False)[0], names):
        scores = np.array(report["scores"][name])
        for label, mask in (("real", y == 0), ("sample", kinds == "sample"), ("regen", kinds == "regen")):
            ax.hist(scores[mask], bins=np.linspace(0, 1, 26), alpha=0.55, label=label)
        ax.axvline(report["threshold"], color="black", lw=1)
        ax.set(title=name, xlabel="p_fake")
        ax.legend(fontsize=8)
    fig.savefig(out / "histograms.png", dpi=120)


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--weights", default="detector/weights")
    parser.add_argument("--baseline", help="baseline classifier safetensors (default: from the workdir)")
    args = parser.parse_args()
    cfg = load_config(args.config)
    baseline = args.baseline or Path(cfg.workdir) / "classifiers" / "baseline.safetensors"
    evaluate(cfg, args.weights, baseline if Path(baseline).is_file() else None, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
