"""The whole recipe, top to bottom:

corpus → (diffusion, or a distilled ε-network) → crops and tiles with ε → per variant: one model per held-out fold, then one on
everything → out-of-fold evaluation (aggregation, calibration, threshold) → export → card.

Every stage skips what is already on disk, so a stopped run continues where it stopped.

    python -m train.recipe --config train/configs/bundled.json           # produces detector/weights/
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .classifiers import run_name, train_classifier
from .config import RecipeConfig, config_parser, load_config
from .corpus import corpus_records, summary
from .crops import build_dire_maps, build_eval_tiles, build_training_crops
from .diffusion import train_diffusion
from .distil import distil
from .evaluate import evaluate
from .export import export
from .levers import TILES_CACHE, build_lever_caches


def run(cfg: RecipeConfig, out_dir: str | Path, log=print) -> dict:
    """Run every stage; returns the out-of-fold metrics."""
    work = cfg.work
    timings: dict[str, float] = json.loads(work.timings.read_text()) if work.timings.is_file() else {}

    def stage(name: str, fn, done: bool = False):
        if done:
            log(f"== {name}: already done")
            return None
        log(f"== {name}")
        start = time.time()
        result = fn()
        timings[name] = round((time.time() - start) / 60, 2)
        work.timings.parent.mkdir(parents=True, exist_ok=True)
        work.timings.write_text(json.dumps(timings, indent=2))
        return result

    records = stage("corpus", lambda: corpus_records(cfg)) or corpus_records(cfg)
    for k, fold in summary(records).items():
        log(f"fold {k}: {fold['fakes']} fakes ({', '.join(fold['families'])}); {fold['reals']} photos")
    if cfg.diffusion.distil_from:  # a cheaper ε-network, distilled on the reused crops' photos
        if not cfg.pixel_source:
            raise ValueError("diffusion.distil_from needs crops.pixels_from (the crops to distil on)")
        stage("distil", lambda: distil(cfg, log=log))
    elif cfg.diffusion.train:  # resumes from its checkpoint; returns at once when its budget is spent
        stage("diffusion", lambda: train_diffusion(cfg, log=log))
    stage("crops", lambda: build_training_crops(cfg, log), done=work.crops.is_file())
    for condition in cfg.eval.conditions:
        stage(f"tiles {condition}", lambda c=condition: build_eval_tiles(cfg, c, log), done=work.tiles(condition).is_file())
    stage("tiles for the levers", lambda: build_lever_caches(cfg, log), done=work.tiles(TILES_CACHE).is_file())
    variants = list(cfg.classifier.variants)  # the image-only tier distils from the same fold's student
    if cfg.classifier.kd_weight > 0:  # DistilDIRE's feature distillation: a DIRE teacher per fold first
        stage("DIRE maps", lambda: build_dire_maps(cfg, log), done=work.crops_dire.is_file())
        variants.insert(0, "teacher")
    for variant in variants:
        for fold in [*range(cfg.corpus.folds), None]:
            name = f"{variant} fold {'all' if fold is None else fold}"
            stage(name, lambda v=variant, f=fold: train_classifier(cfg, v, f, log), done=work.classifier_log(variant, fold).is_file())
    for fraction in cfg.classifier.learning_curve:  # the learning curve: fold students on a share of the sources
        for fold in range(cfg.corpus.folds):
            name = run_name("student", fraction)
            stage(f"{name} fold {fold}", lambda f=fold, x=fraction: train_classifier(cfg, "student", f, log, source_fraction=x),
                  done=work.classifier_log(name, fold).is_file())
    metrics = stage("evaluate", lambda: evaluate(cfg, log=log))
    stage("export", lambda: export(cfg, out_dir, metrics))
    log(f"recipe done: {json.dumps(timings)}")
    return metrics


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--out", default="detector/weights", help="where the exported weights go")
    args = parser.parse_args()
    run(load_config(args.config), args.out, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
