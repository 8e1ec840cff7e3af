"""The whole recipe, top to bottom: data → diffusion → fakes → cache → teacher → student → image-only
→ baseline → export → evaluate → card. Every stage is resumable or skips what is already done, so a
stopped run continues where it stopped.

    python -m train.recipe --config train/configs/bundled.json           # produces detector/weights/
    accelerate launch --num_processes 8 -m train.recipe --config my_config.json   # several GPUs
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from accelerate import Accelerator

from .cache import build_cache
from .classifiers import ROLES, checkpoint_path, train_classifier
from .config import RecipeConfig, config_parser, load_config
from .data import build_patches
from .diffusion import train_diffusion
from .evaluate import evaluate
from .export import export, update_card
from .fakes import make_fakes


def run(cfg: RecipeConfig, out_dir: str | Path, log=print) -> dict | None:
    """Run every stage. Under ``accelerate launch`` the heavy stages share the work; data, export and
    evaluation run on the main process while the others wait. Returns the metrics (main process)."""
    work = Path(cfg.workdir)
    accelerator = Accelerator()
    main = accelerator.is_main_process
    timings: dict[str, float] = {}
    if not main:
        log = lambda message: None  # noqa: E731

    def stage(name: str, fn, done: bool = False, main_only: bool = False):
        if done:
            log(f"== {name}: already done")
            return None
        log(f"== {name}")
        start = time.time()
        result = fn() if (main or not main_only) else None
        accelerator.wait_for_everyone()
        timings[name] = round((time.time() - start) / 60, 2)
        return result

    stage("data", lambda: build_patches(cfg), done=(work / "data" / "manifest.json").is_file() or not cfg.data.photos,
          main_only=True)
    stage("diffusion", lambda: train_diffusion(cfg, log=log), done=not cfg.diffusion.train)  # resumes
    stage("fakes", lambda: make_fakes(cfg, log=log), done=(work / "data" / "test" / "fakes").is_dir()
          and any((work / "data" / "test" / "fakes").iterdir()))
    stage("cache", lambda: build_cache(cfg, log=log))
    for role in ROLES:
        stage(role, lambda role=role: train_classifier(cfg, role, log=log), done=checkpoint_path(cfg, role).is_file()
              and (work / "classifiers" / f"{role}.json").is_file())
    stage("export", lambda: export(cfg, out_dir), main_only=True)
    metrics = stage("evaluate", lambda: evaluate(cfg, out_dir, checkpoint_path(cfg, "baseline"), log=log), main_only=True)
    if not main:
        return None
    update_card(cfg, out_dir, metrics)
    (work / "timings.json").write_text(json.dumps(timings, indent=2))
    log(f"recipe done: {json.dumps(timings)}")
    return metrics


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--out", default="detector/weights", help="where the exported weights go")
    args = parser.parse_args()
    run(load_config(args.config), args.out, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
