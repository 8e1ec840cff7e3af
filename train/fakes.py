"""Stage 3 — fakes from the trained diffusion model, stored losslessly like the reals:

* ``sample_*.png``: unconditional DDIM samples;
* ``regen_*.png``: SDEdit-style regenerations of real patches of the same split (noised to a random
  strength, then denoised) — content-matched hard fakes.

    python -m train.fakes --config train/configs/bundled.json
"""

from __future__ import annotations

import random
from pathlib import Path

from accelerate import Accelerator
from tqdm import tqdm

from detector.models import load_unet

from .common import read_pngs, save_png, seed_everything, set_threads
from .config import RecipeConfig, config_parser, load_config
from .data import SPLITS
from .sampling import generate_samples, regenerate


def make_fakes(cfg: RecipeConfig, unet_dir: str | Path | None = None, log=print) -> dict[str, int]:
    """Write ``data/{split}/fakes/{regen,sample}_*.png``; under ``accelerate launch`` each process makes
    its own share (its own seed, its own file names)."""
    f = cfg.fakes
    set_threads(cfg.threads)
    accelerator = Accelerator()
    rank, world = accelerator.process_index, accelerator.num_processes
    generator = seed_everything(f.seed + rank)
    unet = load_unet(unet_dir or Path(cfg.workdir) / "diffusion" / "unet").float().eval().to(accelerator.device)
    counts = {}
    for split in SPLITS:
        reals = sorted((Path(cfg.workdir) / "data" / split / "reals").glob("*.png"))
        total = f.per_split.get(split) or len(reals)
        n_regen = round(total * f.regen_fraction)
        out = Path(cfg.workdir) / "data" / split / "fakes"
        out.mkdir(parents=True, exist_ok=True)
        chosen = random.Random(f.seed).sample(reals, min(n_regen, len(reals)))[rank::world]
        n_samples = len(range(rank, total - n_regen, world))
        bar = tqdm(total=len(chosen) + n_samples, desc=f"fakes {split}", unit="img", disable=None)
        for start in range(0, len(chosen), f.batch_size):
            batch = chosen[start : start + f.batch_size]
            for path, image in zip(batch, regenerate(unet, read_pngs(batch), f, generator)):
                save_png(image, out / f"regen_{path.stem}.png")
            bar.update(len(batch))
        index = rank
        for images in generate_samples(unet, n_samples, cfg.data.patch_size, f.sample_steps, generator,
                                       f.batch_size, f.bf16):
            for image in images:
                save_png(image, out / f"sample_{index:05d}.png")
                index += world
            bar.update(len(images))
        bar.close()
        counts[split] = total
        log(f"{split}: {len(chosen)} regenerations + {n_samples} samples (process {rank + 1}/{world})")
    accelerator.wait_for_everyone()
    return counts


def main() -> None:
    parser = config_parser(__doc__)
    args = parser.parse_args()
    make_fakes(load_config(args.config))


if __name__ == "__main__":
    main()
