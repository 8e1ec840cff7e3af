"""Stage 3 — fakes from the trained diffusion model, stored losslessly like the reals:

* ``sample_*.png``: unconditional DDIM samples;
* ``regen_*.png``: SDEdit-style regenerations of real patches of the same split (noised to a random
  strength, then denoised) — content-matched hard fakes.

    python -m train.fakes --config train/configs/bundled.json
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm import tqdm

from detector.ddim import DDIM, Schedule
from detector.models import load_unet

from .common import autocast_eps_fn, read_pngs, save_png, seed_everything, set_threads, to_uint8, to_unit
from .config import FakesConfig, RecipeConfig, load_config
from .data import SPLITS


@torch.inference_mode()
def generate_samples(unet, n: int, size: int, steps: int, generator: torch.Generator, batch_size: int = 64,
                     bf16: bool = False):
    """Yield batches of uint8 DDIM samples."""
    ddim = DDIM(Schedule(), steps)
    eps_fn = autocast_eps_fn(unet, bf16)
    device = next(unet.parameters()).device
    for start in range(0, n, batch_size):
        noise = torch.randn(min(batch_size, n - start), 3, size, size, generator=generator).to(device)
        yield to_uint8(ddim.reconstruct(eps_fn, noise)).cpu()


@torch.inference_mode()
def regenerate(unet, reals_uint8: torch.Tensor, cfg: FakesConfig, generator: torch.Generator) -> torch.Tensor:
    """SDEdit: noise each real to a random strength in ``cfg.regen_strength`` (a fraction of the DDIM
    schedule), then denoise with DDIM from that level."""
    ddim = DDIM(Schedule(), cfg.regen_steps)
    eps_fn = autocast_eps_fn(unet, cfg.bf16)
    low, high = cfg.regen_strength
    strengths = low + (high - low) * torch.rand(len(reals_uint8), generator=generator)
    steps = (strengths * cfg.regen_steps).round().long().sub(1).clamp(0, cfg.regen_steps - 1)
    device = next(unet.parameters()).device
    x0 = to_unit(reals_uint8)
    noise = torch.randn(x0.shape, generator=generator)
    out = torch.empty_like(reals_uint8)
    for step in steps.unique().tolist():  # images noised to the same level are denoised together
        members = (steps == step).nonzero().squeeze(1)
        noised = ddim.noise_to(x0[members], step, noise[members]).to(device)
        out[members] = to_uint8(ddim.reconstruct(eps_fn, noised, start_step=step)).cpu()
    return out


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="train/configs/bundled.json")
    args = parser.parse_args()
    make_fakes(load_config(args.config))


if __name__ == "__main__":
    main()
