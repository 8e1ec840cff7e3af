"""Stage 4 — cache: for every image used by the classifiers, the detector-exact ε (one UNet call, fp32)
and the DIRE map (DDIM inversion + reconstruction), stored losslessly in safetensors.

The UNet used is the one that will ship: the EMA weights rounded to float16 (the export format), run
in float32 like the ``Detector``. Inputs go through the detector's own preprocessing, so the cached ε
is bit-identical to what inference computes from the same PNG. Augmented training images get their ε
recomputed on the fly by the classifier stage (``train.classifiers``), never this clean one.

    python -m train.cache --config train/configs/bundled.json
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from detector.ddim import DDIM, Schedule, dire_to_uint8
from detector.models import load_unet

from .common import autocast_eps_fn, model_inputs, read_pngs, set_threads
from .config import RecipeConfig, config_parser, load_config
from .data import SPLITS, list_samples


def shipped_unet(cfg: RecipeConfig):
    """The UNet as it will be exported: parameters rounded through float16 (``cache.unet_fp16``),
    evaluated in float32."""
    unet = load_unet(Path(cfg.workdir) / "diffusion" / "unet").float().eval()
    if not cfg.cache.unet_fp16:
        return unet
    with torch.no_grad():
        for p in unet.parameters():
            p.copy_(p.half().float())
    return unet


def select(cfg: RecipeConfig, split: str):
    """A seeded, class-balanced subset of a split (``cache.per_class``; None = everything)."""
    samples = list_samples(Path(cfg.workdir) / "data", split)
    limit = cfg.cache.per_class.get(split)
    chosen = []
    for label in (0, 1):
        group = [s for s in samples if s.label == label]
        if limit is not None and len(group) > limit:
            group = sorted(random.Random(cfg.cache.seed).sample(group, limit), key=lambda s: s.path.name)
        chosen.extend(group)
    return chosen


@torch.inference_mode()
def compute_maps(unet, x: torch.Tensor, dire_steps: int, with_dire: bool = True, dire_bf16: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ε at t = 0 (fp32, exactly as ``Detector``) and optionally the uint8 DIRE map of a batch in [−1, 1]."""
    ddim = DDIM(Schedule(), dire_steps)
    eps = ddim.eps_at_start(autocast_eps_fn(unet, False), x)
    dire = None
    if with_dire:
        dire_fn = autocast_eps_fn(unet, dire_bf16)
        dire = dire_to_uint8(x, ddim.reconstruct(dire_fn, ddim.invert(dire_fn, x)))
    return eps, dire


def build_cache(cfg: RecipeConfig, log=print) -> dict[str, int]:
    """Write ``cache/{split}.safetensors`` (+ ``.json`` with paths and kinds). Under ``accelerate launch``
    each process computes a slice and the main process merges the parts."""
    set_threads(cfg.threads)
    accelerator = Accelerator()
    rank, world = accelerator.process_index, accelerator.num_processes
    unet = shipped_unet(cfg).to(accelerator.device)
    size = cfg.data.patch_size
    out = Path(cfg.workdir) / "cache"
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        target = out / f"{split}.safetensors"
        samples = select(cfg, split)
        counts[split] = len(samples)
        if target.is_file() and len(load_file(str(target))["labels"]) == len(samples):
            log(f"{split}: cache present ({len(samples)} images)")
            continue
        part = {"images": [], "eps": [], "dire": []}
        mine = range(rank, len(samples), world)
        for start in tqdm(range(0, len(mine), cfg.cache.batch_size), desc=f"cache {split}", disable=None):
            batch = [samples[i] for i in mine[start : start + cfg.cache.batch_size]]
            pixels = read_pngs([s.path for s in batch])
            x = model_inputs(pixels, size).to(accelerator.device)
            eps, dire = compute_maps(unet, x, cfg.cache.dire_steps, dire_bf16=cfg.cache.dire_bf16)
            part["images"].append(pixels)
            part["eps"].append(eps.cpu())
            part["dire"].append(dire.cpu())
        save_file({k: torch.cat(v).contiguous() for k, v in part.items()}, str(out / f"{split}.part{rank}.safetensors"))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            parts = [load_file(str(out / f"{split}.part{r}.safetensors")) for r in range(world)]
            order = [i for r in range(world) for i in range(r, len(samples), world)]
            inverse = torch.empty(len(order), dtype=torch.long)
            inverse[torch.tensor(order)] = torch.arange(len(order))
            tensors = {k: torch.cat([p[k] for p in parts])[inverse].contiguous() for k in part}
            tensors["labels"] = torch.tensor([s.label for s in samples])
            save_file(tensors, str(target))
            (out / f"{split}.json").write_text(json.dumps([{"path": str(s.path), "label": s.label, "kind": s.kind} for s in samples]))
            for r in range(world):
                (out / f"{split}.part{r}.safetensors").unlink()
            log(f"{split}: cached {len(samples)} images")
        accelerator.wait_for_everyone()
    return counts


def load_cache(cfg: RecipeConfig, split: str) -> tuple[dict[str, torch.Tensor], list[dict]]:
    folder = Path(cfg.workdir) / "cache"
    return load_file(str(folder / f"{split}.safetensors")), json.loads((folder / f"{split}.json").read_text())


def main() -> None:
    parser = config_parser(__doc__)
    args = parser.parse_args()
    build_cache(load_config(args.config))


if __name__ == "__main__":
    main()
