"""Stage 2, distilled: a cheaper ε-network. DistilDIRE reads ONE thing from its UNet, ε at t = 0, so a
narrower UNet (``diffusion.block_out_channels`` …) can be trained to give the ε of ``diffusion.distil_from``
(the teacher ε-network) at t = 0 directly, instead of being trained as a diffusion model.

Data: the recipe's training crops of the PHOTOS only (every processing history the classifier sees; like the
teacher's own training, never a generated image). The teacher's ε of each crop is computed once and cached.
The last ``HELD_OUT`` photo crops (an eighth of a small set) are kept out and give the relative ε error printed at the end.
Step-based cosine schedule, bf16 autocast, checkpoint and resume; writes ``workdir/diffusion/unet``.

The result is an ε-feature extractor, not a generative model: it is never asked for DIRE.

    python -m train.distil --config train/configs/narrow-eps.json
"""

from __future__ import annotations

import json
import math
import time

import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from detector.ddim import DDIM
from detector.features import EpsExtractor
from detector.models import build_unet

from .common import schedule_of, seed_everything, set_threads, shipped_unet, to_unit, unet_folder, write_json
from .config import RecipeConfig, config_parser, load_config
from .diffusion import unet_config

HELD_OUT = 1024


def photo_crops(cfg: RecipeConfig) -> torch.Tensor:
    """uint8 N×3×s×s training crops of the photos: this recipe's crops, or those of ``crops.pixels_from``."""
    crops = load_file(str((cfg.pixel_source or cfg.work).crops))
    return crops["pixels"][crops["label"] == 0]


def teacher_eps(cfg: RecipeConfig, pixels: torch.Tensor, log=print) -> torch.Tensor:
    """The teacher's ε (float16) for every crop, cached in the diffusion folder."""
    cache = cfg.work.diffusion / "teacher_eps.safetensors"
    if cache.is_file():
        return load_file(str(cache))["eps"]
    folder = unet_folder(cfg.diffusion.distil_from)
    extractor = EpsExtractor(shipped_unet(folder), schedule_of(folder, cfg.diffusion.schedule))
    log(f"teacher ε of {len(pixels)} photo crops ({folder})")
    eps = torch.cat([extractor(to_unit(pixels[i : i + 256])).half() for i in range(0, len(pixels), 256)])
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({"eps": eps}, str(cache))
    return eps


def distil(cfg: RecipeConfig, log=print):
    """Train (or resume) the distilled ε-network; returns its folder."""
    d = cfg.diffusion
    set_threads(cfg.threads)
    out, checkpoint = cfg.work.diffusion, cfg.work.diffusion / "distil.pt"
    pixels = photo_crops(cfg)
    target = teacher_eps(cfg, pixels, log)
    held_out = max(1, min(HELD_OUT, len(pixels) // 8))
    train_rows = len(pixels) - held_out
    generator = seed_everything(d.seed)
    unet = build_unet(unet_config(cfg)).float().train()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=d.distil_lr, weight_decay=0.0)
    ddim = DDIM(schedule_of(unet_folder(d.distil_from), d.schedule))  # the teacher's schedule: x → ε′(t = 0)
    step, elapsed, history = 0, 0.0, []
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=True)
        unet.load_state_dict(state["unet"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, elapsed, history = state["step"], state["elapsed"], state["history"]
        if step >= d.distil_steps and (cfg.work.trained_unet / "config.json").is_file():
            log(f"ε-network already distilled ({step} steps, {elapsed / 60:.1f} min)")
            return cfg.work.trained_unet
        log(f"resumed at step {step}")
    log(f"distilling a {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M-parameter UNet {tuple(d.block_out_channels)} "
        f"from {d.distil_from} on {train_rows} photo crops ({held_out} held out)")

    def eps_of(x: torch.Tensor) -> torch.Tensor:
        return ddim.eps_at_start(lambda xt, t: unet(xt, t).sample[:, :3].float(), x)

    def save() -> None:
        torch.save({"unet": unet.state_dict(), "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                    "step": step, "elapsed": elapsed, "history": history}, checkpoint)

    start, window_loss = time.time() - elapsed, 0.0
    while step < d.distil_steps:
        for group in optimizer.param_groups:  # cosine decay to zero over the step budget
            group["lr"] = d.distil_lr * 0.5 * (1 + math.cos(math.pi * step / d.distil_steps))
        rows = torch.randint(0, train_rows, (d.batch_size,), generator=generator)
        x = to_unit(pixels[rows])
        flip = torch.rand(len(rows), generator=generator) < 0.5  # ε of a mirrored crop is the mirrored ε
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        y = target[rows].float()
        y = torch.where(flip[:, None, None, None], y.flip(-1), y)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=d.bf16):
            prediction = eps_of(x)
        loss = F.mse_loss(prediction.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        window_loss += loss.item()
        if step % d.checkpoint_every == 0 or step == d.distil_steps:
            elapsed = time.time() - start
            history.append({"step": step, "loss": window_loss / (step - (history[-1]["step"] if history else 0)),
                            "minutes": elapsed / 60})
            log(f"step {step}: loss {history[-1]['loss']:.4f} ({elapsed / 60:.1f} min)")
            window_loss = 0.0
            save()
    unet.eval()
    with torch.inference_mode():
        held = torch.arange(train_rows, len(pixels))
        predicted = torch.cat([eps_of(to_unit(pixels[held[i : i + 256]])) for i in range(0, len(held), 256)])
    truth = target[held].float()
    error = float((predicted - truth).norm() / truth.norm())
    log(f"held-out photo crops: relative ε error {error:.3f} after {step} steps")
    unet.save_pretrained(cfg.work.trained_unet, safe_serialization=True)
    (cfg.work.trained_unet / "scheduler_config.json").write_text(
        json.dumps(ddim.schedule.to_scheduler_config(), indent=2))
    write_json(out / "distil.json", {"teacher": str(d.distil_from), "steps": step, "minutes": round(elapsed / 60, 1),
                                     "held_out_relative_error": round(error, 4), "history": history})
    return cfg.work.trained_unet


def main() -> None:
    cfg = load_config(config_parser(__doc__).parse_args().config)
    distil(cfg, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
