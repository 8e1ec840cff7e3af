"""Stage 2 — the ε-network: a small UNet2DModel (ε-prediction, linear β, 1000 steps, EMA) trained on
native-scale crops of the corpus PHOTOS (never a generated image; mild 0.5–1× rescale only). The
detector reads its ε at t = 0, so ``small_t_fraction`` of the steps draw t below ``small_t_max``.
Starts from ``diffusion.init`` (default: the bundled UNet) or from scratch; ``--exclude-fold k``
leaves fold k's photos out (to compare ε-networks on photos neither has seen). Resumable; writes a
sample grid at each checkpoint; stops at ``max_steps`` or after ``max_minutes``.

    python -m train.diffusion --config train/configs/bundled.json
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel

from detector.ddim import Schedule
from detector.models import build_unet, load_unet, small_unet_config
from detector.perturb import rescale

from .common import init_unet_folder, save_grid, schedule_of, seed_everything, set_threads, to_unit, write_json
from .config import RecipeConfig, config_parser, load_config
from .corpus import corpus_records
from .crops import record_image
from .sampling import generate_samples


def ema_with_warmup(max_decay: float):
    """EMA update whose decay ramps up as (1 + n) / (10 + n) towards ``max_decay``: a short run is not
    dominated by the random initialisation (0.999**2000 would still weigh it at 14 %)."""

    @torch.no_grad()
    def update(ema_params, params, num_averaged):
        n = int(num_averaged)
        decay = min(max_decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)

    return update


def unet_config(cfg: RecipeConfig) -> dict:
    d = cfg.diffusion
    return small_unet_config(cfg.crops.tile, tuple(d.block_out_channels), tuple(d.attention_levels), d.layers_per_block,
                             d.norm_num_groups)


def photo_patches(cfg: RecipeConfig, exclude_fold: int | None = None) -> torch.Tensor:
    """``diffusion.patches`` native-scale crops (uint8 N×3×s×s) of the corpus photos, spread evenly
    over the photos, each after a random 0.5–1× rescale half of the time. Deterministic."""
    d, size = cfg.diffusion, cfg.crops.tile
    photos = [r for r in corpus_records(cfg) if r.label == 0 and r.fold != exclude_fold]
    rng = random.Random(d.seed)
    per_photo = -(-d.patches // len(photos))
    patches = []
    for record in photos:
        image = record_image(record)
        for _ in range(per_photo):
            view = rescale(image, rng.uniform(0.5, 1.0)) if rng.random() < 0.5 else image
            if min(view.size) < size:
                view = image
            left, top = rng.randint(0, view.width - size), rng.randint(0, view.height - size)
            patches.append(np.asarray(view.crop((left, top, left + size, top + size))).transpose(2, 0, 1))
    rng.shuffle(patches)
    return torch.from_numpy(np.stack(patches[: d.patches]))


def initial_unet(cfg: RecipeConfig) -> tuple[object, Schedule]:
    """The UNet to start from (``diffusion.init``) and its noise schedule."""
    d = cfg.diffusion
    folder = init_unet_folder(cfg)
    if folder is None:
        return build_unet(unet_config(cfg)), schedule_of(Path("."), d.schedule)
    return load_unet(folder), schedule_of(folder, d.schedule)


def sample_timesteps(n: int, cfg: RecipeConfig, generator: torch.Generator) -> torch.Tensor:
    """Uniform t, except a ``small_t_fraction`` share drawn below ``small_t_max``."""
    d = cfg.diffusion
    t = torch.randint(0, 1000, (n,), generator=generator)
    small = torch.rand(n, generator=generator) < d.small_t_fraction
    return torch.where(small, torch.randint(0, d.small_t_max, (n,), generator=generator), t)


def train_diffusion(cfg: RecipeConfig, log=print, exclude_fold: int | None = None) -> Path:
    """Train (or resume) and write ``workdir/diffusion/unet`` (the EMA weights, diffusers format).
    Runs unchanged on one CPU or on several GPUs/nodes under ``accelerate launch`` (data-parallel)."""
    d = cfg.diffusion
    set_threads(cfg.threads)
    accelerator = Accelerator()
    out = cfg.work.diffusion
    out.mkdir(parents=True, exist_ok=True)
    generator = seed_everything(d.seed + accelerator.process_index)
    data = photo_patches(cfg, exclude_fold)
    unet, schedule = initial_unet(cfg)
    unet = unet.float().train()
    ema = AveragedModel(unet, multi_avg_fn=ema_with_warmup(d.ema_decay), use_buffers=True)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=d.lr, weight_decay=0.0)
    alphas_cumprod = torch.tensor(schedule.alphas_cumprod(), dtype=torch.float32)
    step, elapsed, history = 0, 0.0, []
    checkpoint = cfg.work.diffusion_checkpoint
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=True)
        unet.load_state_dict(state["unet"])
        if state.get("ema_warmup"):
            ema.load_state_dict(state["ema"])
        else:  # a checkpoint from before the warm-up EMA: restart the average from the current weights
            ema = AveragedModel(unet, multi_avg_fn=ema_with_warmup(d.ema_decay), use_buffers=True)
        optimizer.load_state_dict(state["optimizer"])
        if accelerator.num_processes == 1:
            generator.set_state(state["generator"])
        step, elapsed, history = state["step"], state["elapsed"], state["history"]
        if (step >= d.max_steps or elapsed >= d.max_minutes * 60) and (cfg.work.trained_unet / "config.json").is_file():
            log(f"diffusion already trained ({step} steps, {elapsed / 60:.1f} min)")
            return out / "unet"
        log(f"resumed at step {step} ({elapsed / 60:.1f} min so far)")
    log(f"UNet {sum(p.numel() for p in unet.parameters()) / 1e6:.2f}M params (init: {d.init or 'scratch'}); "
        f"{len(data)} photo patches{'' if exclude_fold is None else f' (fold {exclude_fold} left out)'}; "
        f"{accelerator.num_processes} process(es) on {accelerator.device}")
    model, optimizer = accelerator.prepare(unet, optimizer)
    ema.to(accelerator.device)
    alphas_cumprod = alphas_cumprod.to(accelerator.device)

    def save() -> None:
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            return
        torch.save({"unet": accelerator.unwrap_model(model).state_dict(), "ema": ema.state_dict(),
                    "optimizer": optimizer.state_dict(), "generator": generator.get_state(), "step": step,
                    "ema_warmup": True, "elapsed": elapsed, "history": history}, checkpoint)
        ema.module.eval()
        grid = next(generate_samples(ema.module, schedule, 32, cfg.crops.tile, d.sample_steps,
                                     torch.Generator().manual_seed(123), 32))
        save_grid(grid, out / "samples" / f"step_{step:06d}.png")
        ema.module.save_pretrained(cfg.work.trained_unet, safe_serialization=True)
        (cfg.work.trained_unet / "scheduler_config.json").write_text(json.dumps(schedule.to_scheduler_config(), indent=2))
        write_json(out / "history.json", history)

    def out_of_time() -> bool:  # decided jointly, so no process stops alone
        late = torch.tensor(float(time.time() - start >= d.max_minutes * 60), device=accelerator.device)
        return bool(accelerator.reduce(late, reduction="max").item())

    start, window_loss, window = time.time() - elapsed, 0.0, 0
    model.train()
    while step < d.max_steps and not out_of_time():
        index = torch.randint(0, len(data), (d.batch_size,), generator=generator)
        x0 = to_unit(data[index])
        flip = torch.rand(d.batch_size, generator=generator) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0).to(accelerator.device)
        t = sample_timesteps(d.batch_size, cfg, generator).to(accelerator.device)
        noise = torch.randn(x0.shape, generator=generator).to(accelerator.device)
        abar = alphas_cumprod[t][:, None, None, None]
        x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=d.bf16):
            prediction = model(x_t, t).sample
        loss = F.mse_loss(prediction.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        ema.update_parameters(accelerator.unwrap_model(model))
        step += 1
        window_loss, window = window_loss + loss.item(), window + 1
        if step % d.checkpoint_every == 0:
            elapsed = time.time() - start
            history.append({"step": step, "loss": window_loss / window, "minutes": elapsed / 60})
            log(f"step {step}: loss {window_loss / window:.4f}, "
                f"{step * d.batch_size * accelerator.num_processes / elapsed:.1f} img/s, {elapsed / 60:.1f} min")
            window_loss, window = 0.0, 0
            save()
            model.train()
    elapsed = time.time() - start
    if window:
        history.append({"step": step, "loss": window_loss / window, "minutes": elapsed / 60})
    save()
    log(f"diffusion stage done at step {step} ({elapsed / 60:.1f} min)")
    return cfg.work.trained_unet


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--max-minutes", type=float, help="override the config's time budget")
    parser.add_argument("--exclude-fold", type=int, help="leave this fold's photos out")
    args = parser.parse_args()
    cfg = load_config(args.config)
    if args.max_minutes is not None:
        cfg.diffusion.max_minutes = args.max_minutes
    train_diffusion(cfg, log=lambda m: print(m, flush=True), exclude_fold=args.exclude_fold)


if __name__ == "__main__":
    main()
