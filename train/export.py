"""Stage 9 — export to ``detector/weights/``: the shipped UNet, the DistilDIRE student and the image-only
student as float16 safetensors, plus ``card.json`` (recipe, data manifest, training summary, metrics,
limits). ``Detector.from_pretrained("bundled")`` reads exactly this.

    python -m train.export --config train/configs/bundled.json [--out detector/weights]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from detector.ddim import Schedule
from detector.registry import save_weights

from .cache import shipped_unet
from .classifiers import load_classifier
from .config import RecipeConfig, config_parser, load_config

LIMITS = [
    "Trained on 64x64 patches of 40 photos and on fakes from ONE small diffusion model (3.7M-parameter UNet trained here). "
    "It has never seen Stable Diffusion, Midjourney, DALL-E, Flux, GANs or any other generator: on their images its "
    "verdict means nothing.",
    "Works at 64 px: uploads are resized (shorter side) and centre-cropped to 64x64, so fine detail of large images is discarded.",
    "Real photos unlike the 40 training photos (screenshots, drawings, heavy filters, night-mode phone photos) may be flagged.",
    "For real-world use load the official DistilDIRE weights (ADM-256, ImageNet or CelebA-HQ): "
    "Detector.from_pretrained('distildire-imagenet').",
]


def _histograms(metrics: dict, bins: int = 20) -> dict:
    """Reference score histograms per model: reals, unconditional samples, regenerations (test split)."""
    labels = np.array(metrics["labels"])
    kinds = np.array(metrics["kinds"])
    edges = np.linspace(0, 1, bins + 1)
    out = {"edges": edges.round(3).tolist()}
    for model, scores in metrics["scores"].items():
        scores = np.array(scores)
        out[model] = {name: np.histogram(scores[mask], bins=edges)[0].tolist()
                      for name, mask in (("real", labels == 0), ("sample", kinds == "sample"), ("regen", kinds == "regen"))}
    return out


def build_card(cfg: RecipeConfig, metrics: dict | None = None) -> dict:
    work = Path(cfg.workdir)
    manifest_path = work / "data" / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"splits": {}, "hash": None}
    history = json.loads((work / "diffusion" / "history.json").read_text()) if (work / "diffusion" / "history.json").is_file() else []
    card = {
        "name": cfg.name,
        "description": "DistilDIRE student (ResNet-%d on [image, eps]) + small diffusion UNet, and an image-only "
                       "fast tier, all trained from scratch by train/ on CPU." % cfg.classifier.depth,
        "license": "MIT (weights and code). Training photos: GPL-2+, CC0, BSD-3-Clause and others, listed per file "
                   "in the data sources (shared/data/real_photos/SOURCES.md).",
        "threshold": 0.5,
        "image_size": cfg.data.patch_size,
        "schedule": Schedule().to_scheduler_config(),
        "data": {
            "photos_per_split": {k: len(v) for k, v in manifest["splits"].items()},
            "splits": manifest["splits"],
            "manifest_hash": manifest["hash"],
            "patch_size": cfg.data.patch_size,
            "patches_per_photo": cfg.data.patches_per_photo,
            "classifier_images_per_class": cfg.cache.per_class,
            "fakes": "half unconditional DDIM-%d samples, half SDEdit regenerations (strength %s) of real patches "
                     "of the same split; reals and fakes stored as PNG" % (cfg.fakes.sample_steps, cfg.fakes.regen_strength),
        },
        "diffusion_training": {"steps": history[-1]["step"] if history else None,
                               "minutes": round(history[-1]["minutes"], 1) if history else None,
                               "final_loss": round(history[-1]["loss"], 4) if history else None},
        "recipe": cfg.to_dict(),
        "limits": LIMITS,
    }
    if metrics:
        card["metrics"] = {k: v for k, v in metrics.items() if k not in ("scores", "labels", "kinds")}
        card["reference_histograms"] = _histograms(metrics)
    return card


def export(cfg: RecipeConfig, out_dir: str | Path = "detector/weights", metrics: dict | None = None) -> Path:
    students = {
        "distildire": (load_classifier(cfg, "student").half(), "image+eps"),
        "image-only": (load_classifier(cfg, "image-only").half(), "image"),
    }
    unet = shipped_unet(cfg)
    out = save_weights(out_dir, students, unet=unet.half() if cfg.cache.unet_fp16 else unet, card=build_card(cfg, metrics))
    size = sum(f.stat().st_size for f in Path(out).rglob("*") if f.is_file())
    print(f"exported to {out} ({size / 1e6:.1f} MB)")
    return Path(out)


def update_card(cfg: RecipeConfig, out_dir: str | Path, metrics: dict) -> None:
    """Rewrite card.json with the metrics (weights untouched)."""
    path = Path(out_dir) / "card.json"
    old = json.loads(path.read_text())
    card = build_card(cfg, metrics)
    card["variants"], card["default_variant"] = old["variants"], old["default_variant"]
    path.write_text(json.dumps(card, indent=2))


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--out", default="detector/weights")
    args = parser.parse_args()
    cfg = load_config(args.config)
    metrics_path = Path(cfg.workdir) / "eval" / "metrics.json"
    export(cfg, args.out, json.loads(metrics_path.read_text()) if metrics_path.is_file() else None)


if __name__ == "__main__":
    main()
