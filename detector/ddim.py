"""Deterministic DDIM with guided-diffusion's semantics (``ddimN`` respacing, clip_denoised, float32).

diffusers' ``DDIMInverseScheduler`` cannot reproduce guided-diffusion's ``ddim_reverse_sample``
(it evaluates the network at the target level, never re-derives ε from the clipped x̂0, and ends at
ᾱ(950) instead of 0), so the few formulas live here, written once for both directions:

    x̂0 = clamp(√(1/ᾱ)·x − √(1/ᾱ−1)·ε_θ(x, τ), −1, 1)
    ε′ = (√(1/ᾱ)·x − x̂0) / √(1/ᾱ−1)
    x_to = √ᾱ_to·x̂0 + √(1−ᾱ_to)·ε′

Inversion goes τ_k → τ_{k+1} with the network at the current level and ᾱ_next = 0 after the last step;
reconstruction goes τ_k → τ_{k−1} with ᾱ_prev = 1 before the first. Coefficients are float64 tables
cast to float32 per step, as in guided-diffusion.

``eps_fn(x, t)`` is any callable returning the 3-channel ε prediction for integer timesteps ``t`` (B,).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def space_timesteps(num_train_timesteps: int, steps: int) -> list[int]:
    """guided-diffusion ``space_timesteps(T, "ddimN")``: the smallest stride i with len(range(0, T, i)) == N."""
    for stride in range(1, num_train_timesteps):
        if len(range(0, num_train_timesteps, stride)) == steps:
            return list(range(0, num_train_timesteps, stride))
    raise ValueError(f"cannot create exactly {steps} DDIM steps from {num_train_timesteps} timesteps")


@dataclass(frozen=True)
class Schedule:
    """The training noise schedule of the ε-network (ADM: linear 1e-4 → 0.02 over 1000 steps)."""

    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"

    def alphas_cumprod(self) -> np.ndarray:
        if self.beta_schedule != "linear":
            raise ValueError(f"unsupported beta schedule {self.beta_schedule!r} (only 'linear')")
        betas = np.linspace(self.beta_start, self.beta_end, self.num_train_timesteps, dtype=np.float64)
        return np.cumprod(1.0 - betas)

    def to_scheduler_config(self) -> dict:
        """A diffusers ``DDIMScheduler`` config with the settings that match guided-diffusion's ddimN
        sampling (leading spacing, no offset, ᾱ_prev = 1 at the end, clipped x̂0)."""
        return {
            "_class_name": "DDIMScheduler",
            "num_train_timesteps": self.num_train_timesteps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "beta_schedule": self.beta_schedule,
            "prediction_type": "epsilon",
            "clip_sample": True,
            "clip_sample_range": 1.0,
            "set_alpha_to_one": True,
            "steps_offset": 0,
            "timestep_spacing": "leading",
            "thresholding": False,
            "rescale_betas_zero_snr": False,
        }

    @classmethod
    def from_scheduler_config(cls, config: dict) -> Schedule:
        """Read a diffusers scheduler config (``scheduler_config.json``)."""
        return cls(
            num_train_timesteps=int(config.get("num_train_timesteps", 1000)),
            beta_start=float(config.get("beta_start", 1e-4)),
            beta_end=float(config.get("beta_end", 0.02)),
            beta_schedule=str(config.get("beta_schedule", "linear")),
        )


class DDIM:
    """η = 0 DDIM over a respaced schedule: ε at t = 0, inversion, reconstruction, DIRE."""

    def __init__(self, schedule: Schedule | None = None, steps: int = 20):
        self.schedule = schedule or Schedule()
        self.steps = steps
        self.timesteps = space_timesteps(self.schedule.num_train_timesteps, steps)
        acp = self.schedule.alphas_cumprod()[self.timesteps]
        self.alphas_cumprod = acp
        self.alphas_cumprod_prev = np.append(1.0, acp[:-1])
        self.alphas_cumprod_next = np.append(acp[1:], 0.0)
        self.sqrt_recip = np.sqrt(1.0 / acp)
        self.sqrt_recipm1 = np.sqrt(1.0 / acp - 1.0)

    def _x0_eps(self, eps_fn: EpsFn, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Clipped x̂0 and the ε re-derived from it, network evaluated at respaced step k."""
        t = torch.full((x.shape[0],), self.timesteps[k], device=x.device, dtype=torch.long)
        eps_theta = eps_fn(x, t).float()
        a = float(np.float32(self.sqrt_recip[k]))
        b = float(np.float32(self.sqrt_recipm1[k]))
        x0 = (a * x - b * eps_theta).clamp(-1.0, 1.0)
        eps = (a * x - x0) / b
        return x0, eps

    @staticmethod
    def _move(x0: torch.Tensor, eps: torch.Tensor, alpha_bar_to: float) -> torch.Tensor:
        return float(np.float32(np.sqrt(alpha_bar_to))) * x0 + float(np.float32(np.sqrt(1.0 - alpha_bar_to))) * eps

    def eps_at_start(self, eps_fn: EpsFn, x: torch.Tensor) -> torch.Tensor:
        """DistilDIRE's feature: ε′ of the first inversion step (t = 0, ᾱ = ᾱ(0)). One network call."""
        return self._x0_eps(eps_fn, x, 0)[1]

    def invert(self, eps_fn: EpsFn, x: torch.Tensor) -> torch.Tensor:
        """``ddim_reverse_sample_loop``: image (treated as x at τ_0) → latent x_T. ``steps`` calls."""
        for k in range(self.steps):
            x0, eps = self._x0_eps(eps_fn, x, k)
            x = self._move(x0, eps, self.alphas_cumprod_next[k])
        return x

    def reconstruct(self, eps_fn: EpsFn, latent: torch.Tensor, start_step: int | None = None) -> torch.Tensor:
        """``ddim_sample_loop`` (η = 0) from a latent at τ_{start_step} (default the last, N−1) → clipped
        x̂0. ``start_step + 1`` calls. From Gaussian noise this is DDIM sampling; from a partially
        noised image (``noise_to``) it is an SDEdit-style regeneration."""
        x = latent
        first = self.steps - 1 if start_step is None else start_step
        for k in reversed(range(first + 1)):
            x0, eps = self._x0_eps(eps_fn, x, k)
            x = self._move(x0, eps, self.alphas_cumprod_prev[k])
        return x


    def noise_to(self, x0: torch.Tensor, step: int, noise: torch.Tensor) -> torch.Tensor:
        """q(x_τ | x0) at respaced step ``step``: √ᾱ·x0 + √(1−ᾱ)·noise."""
        abar = self.alphas_cumprod[step]
        return float(np.sqrt(abar)) * x0 + float(np.sqrt(1.0 - abar)) * noise


def dire_to_uint8(image: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """DIRE = |x − x_rec| on [−1, 1] inputs, quantised as the reference (⌊127.5·|Δ|⌋, uint8)."""
    return (torch.abs(image - reconstruction) * 255.0 / 2.0).clamp(0, 255).to(torch.uint8)
