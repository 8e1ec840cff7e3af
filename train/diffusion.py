"""Stage 2 — the diffusion model: a small UNet2DModel (ε-prediction, linear β, 1000 steps, EMA) trained
on the real training patches. Resumable; writes a sample grid at each checkpoint; stops at
``max_steps`` or after ``max_minutes`` (and picks up where it stopped when run again).

    python -m train.diffusion --config train/configs/bundled.json
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel

from detector.ddim import Schedule
from detector.models import build_unet, small_unet_config

from .common import (
    read_pngs,
    save_grid,
    seed_everything,
    set_threads,
    to_unit,
    write_json,
)
from .config import RecipeConfig, config_parser, load_config
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
    return small_unet_config(cfg.data.patch_size, tuple(d.block_out_channels), tuple(d.attention_levels), d.layers_per_block)


def train_diffusion(cfg: RecipeConfig, log=print) -> Path:
    """Train (or resume) and write ``workdir/diffusion/unet`` (the EMA weights, diffusers format).
    Runs unchanged on one CPU or on several GPUs/nodes under ``accelerate launch`` (data-parallel)."""
    d = cfg.diffusion
    set_threads(cfg.threads)
    accelerator = Accelerator()
    out = Path(cfg.workdir) / "diffusion"
    out.mkdir(parents=True, exist_ok=True)
    generator = seed_everything(d.seed + accelerator.process_index)
    data = read_pngs(sorted((Path(cfg.workdir) / "data" / "train" / "reals").glob("*.png")))
    unet = build_unet(unet_config(cfg))
    ema = AveragedModel(unet, multi_avg_fn=ema_with_warmup(d.ema_decay), use_buffers=True)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=d.lr, weight_decay=0.0)
    alphas_cumprod = torch.tensor(Schedule().alphas_cumprod(), dtype=torch.float32)
    step, elapsed, history = 0, 0.0, []
    checkpoint = out / "checkpoint.pt"
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
        if (step >= d.max_steps or elapsed >= d.max_minutes * 60) and (out / "unet" / "config.json").is_file():
            log(f"diffusion already trained ({step} steps, {elapsed / 60:.1f} min)")
            return out / "unet"
        log(f"resumed at step {step} ({elapsed / 60:.1f} min so far)")
    log(f"UNet {sum(p.numel() for p in unet.parameters()) / 1e6:.2f}M params; {len(data)} training patches; "
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
        grid = next(generate_samples(ema.module, 32, cfg.data.patch_size, d.sample_steps, torch.Generator().manual_seed(123), 32))
        save_grid(grid, out / "samples" / f"step_{step:06d}.png")
        ema.module.save_pretrained(out / "unet", safe_serialization=True)
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
        t = torch.randint(0, 1000, (d.batch_size,), generator=generator).to(accelerator.device)
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
    return out / "unet"


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--max-minutes", type=float, help="override the config's time budget")
    args = parser.parse_args()
    cfg = load_config(args.config)
    if args.max_minutes is not None:
        cfg.diffusion.max_minutes = args.max_minutes
    train_diffusion(cfg, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
