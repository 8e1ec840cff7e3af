"""Sampling from a trained ε-UNet with ``detector.ddim``: unconditional DDIM samples and SDEdit
regenerations (the diffusion stage's sample grids and ``train.generate``). The noise schedule is
always passed in: it belongs to the UNet (its ``scheduler_config.json``), not to this module."""

from __future__ import annotations

import torch

from detector.ddim import DDIM, Schedule

from .common import autocast_eps_fn, to_uint8, to_unit


@torch.inference_mode()
def generate_samples(unet, schedule: Schedule, n: int, size: int, steps: int, generator: torch.Generator,
                     batch_size: int = 64, bf16: bool = False):
    """Yield batches of uint8 DDIM samples."""
    ddim = DDIM(schedule, steps)
    eps_fn = autocast_eps_fn(unet, bf16)
    device = next(unet.parameters()).device
    for start in range(0, n, batch_size):
        noise = torch.randn(min(batch_size, n - start), 3, size, size, generator=generator).to(device)
        yield to_uint8(ddim.reconstruct(eps_fn, noise)).cpu()


@torch.inference_mode()
def regenerate(unet, schedule: Schedule, reals_uint8: torch.Tensor, generator: torch.Generator,
               strength: tuple[float, float] = (0.2, 0.5), steps: int = 20, bf16: bool = False) -> torch.Tensor:
    """SDEdit: noise each real to a random strength in ``strength`` (a fraction of the DDIM schedule),
    then denoise with DDIM from that level."""
    ddim = DDIM(schedule, steps)
    eps_fn = autocast_eps_fn(unet, bf16)
    low, high = strength
    strengths = low + (high - low) * torch.rand(len(reals_uint8), generator=generator)
    levels = (strengths * steps).round().long().sub(1).clamp(0, steps - 1)
    device = next(unet.parameters()).device
    x0 = to_unit(reals_uint8)
    noise = torch.randn(x0.shape, generator=generator)
    out = torch.empty_like(reals_uint8)
    for level in levels.unique().tolist():  # images noised to the same level are denoised together
        members = (levels == level).nonzero().squeeze(1)
        noised = ddim.noise_to(x0[members], level, noise[members]).to(device)
        out[members] = to_uint8(ddim.reconstruct(eps_fn, noised, start_step=level)).cpu()
    return out
