"""Sampling from a trained ε-UNet with ``detector.ddim``: unconditional DDIM samples and SDEdit
regenerations (used for the fakes, the sample grids and ``train.generate``)."""

from __future__ import annotations

import torch

from detector.ddim import DDIM, Schedule

from .common import autocast_eps_fn, to_uint8, to_unit
from .config import FakesConfig


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
