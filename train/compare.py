"""Should a candidate recipe replace the shipped one? Two recipes' out-of-fold student scores side by side,
with the adoption rule of a cheaper ε network applied as stated: keep the candidate only if its
leave-family-out ROC-AUC is within ``--auc-tolerance`` (0.005) and its TPR at its own card threshold within
``--tpr-tolerance`` (0.01) of the reference's.

Both runs score the same images (same corpus, same folds), so the differences are paired. The paired
bootstrap over images (95 % interval) says how much of a difference the 316 + 348 images can tell apart;
the rule itself is applied to the point figures, as the issue states it.

    python -m train.compare --config train/configs/bundled.json --candidate train/configs/lean-eps.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.metrics import roc_auc_score

from .config import RecipeConfig, load_config
from .corpus import corpus_records
from .evaluate import binary_metrics

FIXED_FPRS = (0.02, 0.05, 0.10, 0.20)


def student_scores(cfg: RecipeConfig) -> tuple[dict, dict[int, float]]:
    """The out-of-fold student report of a recipe (``train.evaluate``'s metrics.json) and its calibrated scores."""
    report = json.loads(cfg.work.metrics.read_text())["models"]["student"]
    return report, {int(k): float(v) for k, v in report["scores"].items()}


def tpr_at_fpr(y: np.ndarray, p: np.ndarray, fpr: float) -> float:
    """TPR when at most ``fpr`` of the photos are flagged: fakes scored above the (k+1)-th highest photo, k = ⌊fpr·n⌋."""
    photos = np.sort(p[y == 0])[::-1]
    k = int(np.floor(fpr * len(photos) + 1e-9))
    threshold = photos[k] if k < len(photos) else -np.inf
    return float((p[y == 1] > threshold).mean())


def operating_point(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[float, float]:
    """(TPR, FPR) at ``threshold``, as ``train.evaluate`` counts them."""
    m = binary_metrics(y, p, threshold)
    return m["tpr"], m["fpr"]


def paired_bootstrap(y: np.ndarray, p_ref: np.ndarray, p_new: np.ndarray, figure, rounds: int = 2000,
                     seed: int = 0) -> tuple[float, float]:
    """95 % interval of figure(y, p_new) − figure(y, p_ref) over images resampled with replacement within each class."""
    rng = np.random.default_rng(seed)
    fakes, photos = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    deltas = []
    for _ in range(rounds):
        rows = np.concatenate([rng.choice(fakes, len(fakes)), rng.choice(photos, len(photos))])
        deltas.append(figure(y[rows], p_new[rows]) - figure(y[rows], p_ref[rows]))
    low, high = np.percentile(deltas, [2.5, 97.5])
    return float(low), float(high)


def compare(reference: RecipeConfig, candidate: RecipeConfig, auc_tolerance: float = 0.005,
            tpr_tolerance: float = 0.01) -> dict:
    """Every figure of the decision, and the decision."""
    records = corpus_records(reference)
    ref_report, ref = student_scores(reference)
    new_report, new = student_scores(candidate)
    if set(ref) != set(new):
        raise SystemExit("the two runs did not score the same images: compare runs of the same corpus")
    ids = sorted(ref)
    y = np.array([records[i].label for i in ids])
    p_ref, p_new = np.array([ref[i] for i in ids]), np.array([new[i] for i in ids])
    t_ref, t_new = ref_report["threshold"], new_report["threshold"]

    def auc(yy, pp):
        return float(roc_auc_score(yy, pp))

    def held_out_rule(report):
        rule = report["threshold_rule"]
        return rule["chosen"], rule["rules"][rule["chosen"]]

    ref_rule, new_rule = held_out_rule(ref_report), held_out_rule(new_report)
    out = {
        "images": {"generated": int(y.sum()), "photos": int((1 - y).sum())},
        "auc": {"reference": auc(y, p_ref), "candidate": auc(y, p_new)},
        "tpr_fpr_at_card_threshold": {"reference": operating_point(y, p_ref, t_ref),
                                      "candidate": operating_point(y, p_new, t_new),
                                      "thresholds": (t_ref, t_new)},
        "held_out_rule": {"reference": {"rule": ref_rule[0], "tpr": (ref_rule[1]["tpr_mean"], ref_rule[1]["tpr_std"]),
                                        "fpr": (ref_rule[1]["fpr_mean"], ref_rule[1]["fpr_std"])},
                          "candidate": {"rule": new_rule[0], "tpr": (new_rule[1]["tpr_mean"], new_rule[1]["tpr_std"]),
                                        "fpr": (new_rule[1]["fpr_mean"], new_rule[1]["fpr_std"])}},
        "tpr_at_fpr": {f"{f:.2f}": (tpr_at_fpr(y, p_ref, f), tpr_at_fpr(y, p_new, f)) for f in FIXED_FPRS},
        "bootstrap_95": {
            "auc": paired_bootstrap(y, p_ref, p_new, auc),
            "tpr_at_fpr_0.05": paired_bootstrap(y, p_ref, p_new, lambda yy, pp: tpr_at_fpr(yy, pp, 0.05)),
        },
    }
    d_auc = out["auc"]["candidate"] - out["auc"]["reference"]
    d_tpr = out["tpr_fpr_at_card_threshold"]["candidate"][0] - out["tpr_fpr_at_card_threshold"]["reference"][0]
    out["delta"] = {"auc": d_auc, "tpr_at_card_threshold": d_tpr}
    out["adopt"] = bool(d_auc >= -auc_tolerance and d_tpr >= -tpr_tolerance)
    out["rule"] = f"adopt if ΔAUC >= -{auc_tolerance} and ΔTPR at the card threshold >= -{tpr_tolerance}"
    return out


def report_text(reference: str, candidate: str, c: dict) -> str:
    tr, tn = c["tpr_fpr_at_card_threshold"]["reference"], c["tpr_fpr_at_card_threshold"]["candidate"]
    hr, hn = c["held_out_rule"]["reference"], c["held_out_rule"]["candidate"]
    lines = [
        f"reference {reference}  vs  candidate {candidate}  "
        f"({c['images']['generated']} generated images, {c['images']['photos']} photos, out of fold)",
        f"ROC-AUC                     {c['auc']['reference']:.4f}  {c['auc']['candidate']:.4f}  "
        f"Δ {c['delta']['auc']:+.4f} (paired bootstrap 95 %: {c['bootstrap_95']['auc'][0]:+.4f} .. "
        f"{c['bootstrap_95']['auc'][1]:+.4f})",
        f"TPR / FPR at card threshold {tr[0]:.3f} / {tr[1]:.3f}  {tn[0]:.3f} / {tn[1]:.3f}  Δ TPR "
        f"{c['delta']['tpr_at_card_threshold']:+.3f} (thresholds {c['tpr_fpr_at_card_threshold']['thresholds'][0]:.3f}, "
        f"{c['tpr_fpr_at_card_threshold']['thresholds'][1]:.3f})",
        f"held-out rule TPR           {hr['tpr'][0]:.3f}±{hr['tpr'][1]:.3f}  {hn['tpr'][0]:.3f}±{hn['tpr'][1]:.3f}   "
        f"FPR {hr['fpr'][0]:.3f}±{hr['fpr'][1]:.3f}  {hn['fpr'][0]:.3f}±{hn['fpr'][1]:.3f}  ({hr['rule']}, {hn['rule']})",
    ]
    for f, (a, b) in c["tpr_at_fpr"].items():
        lines.append(f"TPR at FPR {f}             {a:.3f}  {b:.3f}  Δ {b - a:+.3f}")
    low, high = c["bootstrap_95"]["tpr_at_fpr_0.05"]
    lines.append(f"  (Δ TPR at FPR 0.05, paired bootstrap 95 %: {low:+.3f} .. {high:+.3f})")
    lines.append(f"{c['rule']}: {'ADOPT' if c['adopt'] else 'keep the reference'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the reference recipe (the shipped one)")
    parser.add_argument("--candidate", required=True, help="the recipe that would replace it")
    parser.add_argument("--auc-tolerance", type=float, default=0.005)
    parser.add_argument("--tpr-tolerance", type=float, default=0.01)
    parser.add_argument("--json", help="where to write every figure (default: the candidate's eval/compare.json, "
                                       "which train.export puts in the model card)")
    args = parser.parse_args()
    candidate = load_config(args.candidate)
    c = compare(load_config(args.config), candidate, args.auc_tolerance, args.tpr_tolerance)
    print(report_text(args.config, args.candidate, c))
    with open(args.json or candidate.work.eval / "compare.json", "w") as f:
        json.dump({"reference": args.config, "candidate": args.candidate, **c}, f, indent=2)


if __name__ == "__main__":
    main()
