"""Stage 6 — export to ``detector/weights/``: the ε-network (the UNet the crops were cached with; a distilled
one beside the diffusion UNet it came from, which keeps the DIRE map), the
DistilDIRE student and the image-only tier trained on ALL folds, as float16 safetensors, plus
``card.json``: preprocessing (native tiles, the aggregation rule chosen out-of-fold), calibration and
threshold (chosen out-of-fold), the training data and its licences, the recipe, the out-of-fold
metrics and the limits. ``Detector.from_pretrained("bundled")`` reads exactly this.

    python -m train.export --config train/configs/bundled.json [--out detector/weights] [--card-only]
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from detector.config import Calibration, ModelConfig
from detector.registry import save_weights
from detector.tiling import TilingConfig
from detector.verdict import VerdictPolicy

from .classifiers import VARIANTS, load_classifier
from .common import diffusion_unet_source, schedule_of, shipped_unet, unet_source
from .config import RecipeConfig, config_parser, load_config
from .corpus import Record, corpus_records

#: card variant name → recipe variant
SHIPPED = {"distildire": "student", "image-only": "image-only"}
VARIANT_DESCRIPTIONS = {
    "distildire": "ResNet-{depth} student on [image, ε] of native-resolution tiles, ε from {eps}",
    "image-only": "ResNet-{depth} on the image tiles alone, distilled from the DistilDIRE student",
}


def eps_network_text(unet, distilled: bool = False) -> str:
    """A UNet in words, as the model card and the registry state it (``distilled``: an ε network distilled
    from the diffusion UNet's ε at t = 0, train.distil)."""
    how = "distilled by train/ from the diffusion UNet's ε at t=0" if distilled else "trained by train/"
    return f"UNet2DModel {how}, {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M parameters, {unet.config.sample_size} px"


def unet_gflop(unet, tiles: int = 16) -> float:
    """GFLOP of one ε call on ``tiles`` tiles (torch's FLOP counter: the same on every machine)."""
    import copy

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    size = int(unet.config.sample_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():  # on a float32 copy: the export stays float16
        copy.deepcopy(unet).float()(torch.zeros(tiles, unet.config.in_channels, size, size), torch.zeros(tiles))
    return counter.get_total_flops() / 1e9


def eps_network_trade(cfg: RecipeConfig, distilled, diffusion) -> dict:
    """What a distilled ε network trades, for the card: compute per image against the diffusion UNet's, its ε
    error (``distil.json``) and, where ``train.compare`` wrote one, the out-of-fold comparison it was adopted on."""
    fast, slow = unet_gflop(distilled), unet_gflop(diffusion)
    distil = json.loads((cfg.work.diffusion / "distil.json").read_text())
    trade = {"parameters_m": round(sum(p.numel() for p in distilled.parameters()) / 1e6, 2),
             "teacher_parameters_m": round(sum(p.numel() for p in diffusion.parameters()) / 1e6, 2),
             "gflop_per_16_tiles": round(fast, 1), "teacher_gflop_per_16_tiles": round(slow, 1),
             "held_out_relative_eps_error": distil["held_out_relative_error"], "distil_steps": distil["steps"]}
    text = (f"ε comes from a {trade['parameters_m']:.2f} M-parameter UNet distilled from the "
            f"{trade['teacher_parameters_m']:.2f} M diffusion UNet: {fast:.1f} instead of {slow:.1f} GFLOP per image "
            f"(16 tiles, {slow / fast:.1f}x fewer), relative ε error {trade['held_out_relative_eps_error']:.3f} on "
            "held-out photo crops; the student was retrained on its ε")
    comparison = cfg.work.eval / "compare.json"
    c = json.loads(comparison.read_text()) if comparison.is_file() else None
    if c and cfg.work.metrics.is_file():  # a comparison of an earlier evaluation is not this model's: left out
        auc = json.loads(cfg.work.metrics.read_text())["models"]["student"]["clean"]["auc"]
        c = c if abs(c["auc"]["candidate"] - auc) < 1e-9 else None
    if c:
        (tr, _), (tn, _) = c["tpr_fpr_at_card_threshold"]["reference"], c["tpr_fpr_at_card_threshold"]["candidate"]
        trade["comparison"] = {k: c[k] for k in ("reference", "auc", "tpr_fpr_at_card_threshold", "tpr_at_fpr", "adopt", "rule")}
        text += (f". Out of fold against the student on the diffusion UNet's ε ({c['reference']}): ROC-AUC "
                 f"{c['auc']['candidate']:.3f} vs {c['auc']['reference']:.3f}, TPR at the card threshold {tn:.2f} vs "
                 f"{tr:.2f} ({c['rule']})")
    trade["trade"] = text + ". The DIRE map still comes from the diffusion UNet."
    return trade


LICENCE = (
    "CC BY-NC 4.0 (weights). The training images include non-commercial sources (ImageNet samples, BSD100, "
    "WB_sRGB photos under CC BY-NC-SA), sources without a licence (dcsan/imagen generator outputs, EXIF samples, "
    "Urban100, Set14) and generator outputs under their services' terms, so the weights are released for "
    "non-commercial use only, as the official DistilDIRE weights are. Code: MIT."
)

LIMITS = [
    "Trained on about 660 images: 316 outputs of ~45 public generators (mostly 2022-era: DALL-E mini/2, GLID-3-XL, "
    "latent diffusion, Disco/Majesty Diffusion, SD 1.x; a few images each of SDXL, SD3, FLUX, Kolors, Kandinsky-3, "
    "HunyuanDiT, Midjourney and 2025 DiT models) and ~350 photos. Generators unlike these may go undetected.",
    "Looks at native-resolution 64x64 tiles (at most 16 per image, spread over it): it reads pixel-level traces, not "
    "content. Images smaller than 64 px are enlarged and flagged low-confidence.",
    "Heavy processing erases the traces: strong JPEG, downscaling, screenshots and re-photographs lower p(fake) of "
    "generated images. Heavily smoothed, denoised or upscaled photos may be flagged.",
    "Inpainted or partly edited photos were not in training; the tile heat map may show local traces but the image "
    "score is an average over tiles.",
    "The out-of-fold metrics are on held-out generator families and photo sources of this corpus, not on an "
    "independent benchmark; the official DistilDIRE weights (ADM-256, ImageNet) are the published reference.",
]


def data_card(records: list[Record]) -> dict:
    """What the model was trained on: counts per family and photo source, folds, licences."""
    fakes = [r for r in records if r.label == 1]
    reals = [r for r in records if r.label == 0]
    return {
        "images": {"generated": len(fakes), "photos": len(reals)},
        "generator_families": dict(Counter(r.group for r in fakes).most_common()),
        "generators": dict(Counter(r.generator for r in fakes).most_common()),
        "photo_sources": dict(Counter(r.source for r in reals).most_common()),
        "folds": {str(k): {"families": sorted({r.group for r in fakes if r.fold == k}),
                           "photo_sources": sorted({r.group for r in reals if r.fold == k})}
                  for k in sorted({r.fold for r in records})},
        "licences": dict(Counter(_licence_kind(r.licence) for r in records).most_common()),
        "sources": "shared/data/public_corpus (manifest.csv, SOURCES.md: repository, commit and licence per file) "
                   "and shared/data/real_photos (manifest.csv)",
    }


def _licence_kind(text: str) -> str:
    t = text.lower()
    if not t.strip():
        return "unstated"
    if "non-commercial" in t or "-nc" in t or "nc-" in t or "research" in t:
        return "non-commercial"
    if "none stated" in t or "unclear" in t or "no licen" in t:
        return "unstated / unclear"
    if "gpl" in t:
        return "copyleft (GPL/AGPL)"
    return "permissive or other (see manifest)"


def build_card(cfg: RecipeConfig, metrics: dict | None, previous: dict | None = None,
               eps_network: str = "diffusion UNet", dire_network: str | None = None) -> dict:
    """The card from this run's metrics: one ``ModelConfig.to_card()`` entry per shipped variant. With
    ``previous`` (the card of the weights being kept), a shipped variant this run did not evaluate keeps its
    previous settings and metrics, marked as carried over. ``eps_network``: the ε-UNet, in words;
    ``dire_network``: the DIRE map's UNet when it is another one (a distilled ε network)."""
    records = corpus_records(cfg)
    eps_words = ("a small UNet distilled from a small diffusion UNet (which keeps the DIRE map)" if dire_network
                 else "a small diffusion UNet")
    variants, carried = {}, []
    for card_name, variant in SHIPPED.items():
        chosen = (metrics or {}).get("models", {}).get(variant, {})
        if not chosen and previous and card_name in previous.get("variants", {}):
            variants[card_name] = {**previous["variants"][card_name], "carried_over": True}
            carried.append(variant)
            continue
        inputs = VARIANTS[variant].inputs
        policy = {k: float(chosen[k]) for k in ("threshold", "unsure_margin", "unsure_above") if k in chosen}
        variants[card_name] = ModelConfig(
            card_name, f"{cfg.name} — {card_name}", VARIANT_DESCRIPTIONS[card_name].format(
                depth=cfg.classifier.depth, eps=eps_words), LICENCE, inputs, cfg.crops.tile,
            TilingConfig(cfg.crops.tile, cfg.eval.max_tiles, chosen.get("aggregate", "mean_logit")),
            Calibration.from_card(chosen.get("calibration")), VerdictPolicy(**policy) if policy else VerdictPolicy(),
            eps_network=eps_network if inputs != "image" else "none",
            dire_network=dire_network if inputs != "image" else None).to_card()
    card = {
        "name": cfg.name,
        "description": (f"DistilDIRE student (ResNet-{cfg.classifier.depth} on [image, eps] of native-resolution "
                        f"{cfg.crops.tile}-px tiles, eps at t=0 from {eps_words}) and an image-only tier, "
                        "trained from scratch on CPU by train/ on public generators' images and photos."),
        "license": LICENCE,
        "preprocessing": variants["distildire"]["preprocessing"],
        "threshold_policy": threshold_policy((metrics or {}).get("models", {}).get("student", {})),
        "data": data_card(records),
        "recipe": cfg.to_dict(),
        "limits": LIMITS + finds_limit((metrics or {}).get("models", {}).get("student", {})),
        "variants": variants,
        "default_variant": "distildire",
    }
    if metrics:
        card["metrics"] = {name: {k: v for k, v in m.items() if k != "scores"} for name, m in metrics["models"].items()}
        card["reference_histograms"] = reference_histograms(metrics, records)
        if metrics.get("learning_curve"):
            card["learning_curve"] = metrics["learning_curve"]
        if metrics.get("levers"):
            card["levers"] = metrics["levers"]
    for variant in carried:  # not re-evaluated in this run: its previous figures, said to be so
        card.setdefault("metrics", {})[variant] = {**previous.get("metrics", {}).get(variant, {}), "carried_over": True}
        card_name = next(k for k, v in SHIPPED.items() if v == variant)
        if card_name in previous.get("reference_histograms", {}):
            card.setdefault("reference_histograms", {"edges": previous["reference_histograms"]["edges"]})[card_name] = \
                previous["reference_histograms"][card_name]
    return card


def finds_limit(report: dict) -> list[str]:
    """The limit a user most needs to read, in numbers: how much a verdict of "real" is worth."""
    rule = report.get("threshold_rule")
    if not rule:
        return []
    chosen = rule["rules"][rule["chosen"]]
    return [f"At the card threshold it finds about {chosen['tpr_mean']:.0%} of the generated images of generators it "
            f"never saw (out of sample, {chosen['tpr_min']:.0%} in the worst fold), while flagging about "
            f"{chosen['fpr_mean']:.0%} of photos from sources it never saw: a 'real' verdict means no generation traces "
            "were found, not that the image is a photo."]


def threshold_policy(report: dict) -> str:
    """The card's one-line statement of how the threshold was chosen and how it held up out of sample."""
    rule = report.get("threshold_rule")
    if not rule:
        return "threshold 0.5 (no out-of-fold evaluation); p(fake) uncalibrated"
    chosen = rule["rules"][rule["chosen"]]
    return (f"threshold rule '{rule['chosen']}': {chosen['rule']}, chosen among {len(rule['rules'])} rules by fold "
            f"rotation (threshold picked on three folds, measured on the fourth fold's unseen generator families and "
            f"photo sources: TPR {chosen['tpr_mean']:.2f} ± {chosen['tpr_std']:.2f}, FPR {chosen['fpr_mean']:.2f} ± "
            f"{chosen['fpr_std']:.2f}); unsure for p between {rule['threshold'] - rule['unsure_margin']:.2f} and "
            f"{rule['threshold'] + rule['unsure_above']:.2f}, the range where thresholds chosen on different folds "
            "disagree; p(fake) calibrated out-of-fold by temperature and bias")


def reference_histograms(metrics: dict, records: list[Record], bins: int = 20) -> dict:
    """Out-of-fold calibrated score histograms per shipped variant: photos vs generated images."""
    edges = np.linspace(0, 1, bins + 1)
    out = {"edges": edges.round(3).tolist()}
    for card_name, variant in SHIPPED.items():
        scores = metrics["models"].get(variant, {}).get("scores")
        if not scores:
            continue
        ids = [int(r) for r in scores]
        p = np.array(list(scores.values()))
        y = np.array([records[r].label for r in ids])
        out[card_name] = {"real": np.histogram(p[y == 0], bins=edges)[0].tolist(),
                          "fake": np.histogram(p[y == 1], bins=edges)[0].tolist()}
    return out


def export(cfg: RecipeConfig, out_dir: str | Path = "detector/weights", metrics: dict | None = None) -> Path:
    """Write the weights folder. A shipped variant this recipe does not train (``classifier.variants``) keeps
    its file and card entry from the folder's current card, marked carried over. A distilled ε network
    (``diffusion.distil_from``) goes to ``eps-unet/`` and the diffusion UNet it was distilled from to ``unet/``,
    which then serves the DIRE map only."""
    out = Path(out_dir)
    trained = {card_name: variant for card_name, variant in SHIPPED.items() if variant in cfg.classifier.variants}
    previous = json.loads((out / "card.json").read_text()) if (out / "card.json").is_file() else None
    for card_name in SHIPPED.keys() - trained.keys():
        if not previous or card_name not in previous.get("variants", {}):
            raise SystemExit(f"{card_name} is not trained by this recipe and {out} has none to keep")
    students = {card_name: (load_classifier(cfg, variant, None).half(), VARIANTS[variant].inputs)
                for card_name, variant in trained.items()}
    diffusion_folder = diffusion_unet_source(cfg)
    diffusion = shipped_unet(diffusion_folder).half()
    distilled = shipped_unet(unet_source(cfg)).half() if cfg.diffusion.distil_from else None
    card = build_card(cfg, metrics, previous if len(trained) < len(SHIPPED) else None,
                      eps_network=eps_network_text(distilled if distilled is not None else diffusion, distilled is not None),
                      dire_network=eps_network_text(diffusion) if distilled is not None else None)
    if distilled is not None:
        card["eps_network"] = eps_network_trade(cfg, distilled, diffusion)
    (out / "card.json").unlink(missing_ok=True)  # rewritten below; weights files are overwritten in place
    if distilled is None:
        shutil.rmtree(out / "eps-unet", ignore_errors=True)
    save_weights(out, students, unet=diffusion, card=card, schedule=schedule_of(diffusion_folder, cfg.diffusion.schedule),
                 eps_unet=distilled)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"exported to {out} ({size / 1e6:.1f} MB)")
    return out


def export_card(cfg: RecipeConfig, out_dir: str | Path, metrics: dict) -> Path:
    """Rewrite ``card.json`` of existing weights from this run's out-of-fold metrics, and the students this
    run evaluated AND trained on everything; the other students (and the UNet) stay as they are, their card
    entries carried over — for a run that re-evaluated one variant without rerunning the whole recipe."""
    from safetensors.torch import save_file

    path = Path(out_dir) / "card.json"
    previous = json.loads(path.read_text())
    eps_network = previous["variants"].get("distildire", {}).get("eps_network", "diffusion UNet")
    card = build_card(cfg, metrics, previous, eps_network)
    for card_name, variant in SHIPPED.items():
        if variant in metrics.get("models", {}) and cfg.work.classifier(variant, None).is_file():
            model = load_classifier(cfg, variant, None).half()
            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            save_file(state, str(Path(out_dir) / previous["variants"][card_name]["student"]),
                      metadata={"inputs": VARIANTS[variant].inputs})
            print(f"{card_name}: weights of this run's {variant} (all folds) written")
        elif variant in metrics.get("models", {}):
            raise SystemExit(f"{variant} was evaluated but not trained on everything: python -m train.classifiers "
                             f"--config … --variant {variant} --fold all")
    for name, entry in previous["variants"].items():  # the files stay; so do their entries
        card["variants"][name] = {**card["variants"].get(name, {}), **{k: entry[k] for k in ("student", "unet", "dire_unet", "inputs") if k in entry}}
    for key in ("image_size",):
        if key in previous:
            card[key] = previous[key]
    path.write_text(json.dumps(card, indent=2))
    print(f"card rewritten at {path} (weights kept)")
    return path


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--out", default="detector/weights")
    parser.add_argument("--card-only", action="store_true",
                        help="rewrite card.json and the students this run evaluated; keep the other weights files "
                             "(variants this run did not evaluate keep their previous entry, marked carried_over)")
    args = parser.parse_args()
    cfg = load_config(args.config)
    metrics = json.loads(cfg.work.metrics.read_text()) if cfg.work.metrics.is_file() else None
    if args.card_only:
        if metrics is None:
            raise SystemExit(f"{cfg.work.metrics} is missing: run python -m train.evaluate first")
        export_card(cfg, args.out, metrics)
    else:
        export(cfg, args.out, metrics)


if __name__ == "__main__":
    main()
