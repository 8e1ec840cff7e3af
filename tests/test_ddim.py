"""DDIM with guided-diffusion semantics, checked against diffusers and against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler

from detector.ddim import DDIM, Schedule, dire_to_uint8, space_timesteps

ALPHA_BAR = torch.tensor(Schedule().alphas_cumprod())


def _alpha_bar(t: torch.Tensor) -> torch.Tensor:
    return ALPHA_BAR[t].float()[:, None, None, None]


def test_respacing_matches_guided_diffusion():
    assert space_timesteps(1000, 20) == list(range(0, 1000, 50))
    assert space_timesteps(1000, 30)[:3] == [0, 34, 68]  # not diffusers' 1000 // 30 = 33
    assert space_timesteps(1000, 250)[-1] == 996
    ddim = DDIM(steps=20)
    assert ddim.alphas_cumprod[0] == pytest.approx(0.9999)
    assert ddim.alphas_cumprod[-1] == pytest.approx(1.0604e-4, rel=1e-3)
    assert ddim.alphas_cumprod_next[-1] == 0.0 and ddim.alphas_cumprod_prev[0] == 1.0


def test_sampling_direction_matches_diffusers_ddim_scheduler():
    """Configured as guided-diffusion's ddim20 (leading, no offset, ᾱ_prev=1, clipped x̂0 and ε)."""

    def eps_fn(x, t):
        return 0.8 * torch.tanh(1.3 * x + 1e-3 * t.float()[:, None, None, None])

    torch.manual_seed(0)
    latent = torch.randn(2, 3, 16, 16)
    ours = DDIM(steps=20).reconstruct(eps_fn, latent)

    config = {k: v for k, v in Schedule().to_scheduler_config().items() if not k.startswith("_")}
    scheduler = DDIMScheduler(**config)
    scheduler.set_timesteps(20)
    x = latent.clone()
    for t in scheduler.timesteps:
        x = scheduler.step(eps_fn(x, torch.full((2,), int(t))), t, x, eta=0.0, use_clipped_model_output=True).prev_sample
    assert ((x - ours).abs().max() / ours.abs().max()).item() <= 1e-5


def test_eps_at_t0_follows_the_clip_formula():
    """ε = ε_θ where a·x − b·ε_θ stays in [−1, 1]; else (a·x ∓ 1)/b with a=√(1/ᾱ0), b=√(1/ᾱ0−1)."""
    eps_theta = torch.full((1, 3, 4, 4), 0.7)
    x = torch.linspace(-1.0, 1.0, 48).reshape(1, 3, 4, 4)
    eps = DDIM().eps_at_start(lambda x_, t: eps_theta, x)
    a, b = np.sqrt(1 / 0.9999), np.sqrt(1 / 0.9999 - 1)
    raw_x0 = a * x - b * eps_theta
    clipped = raw_x0.clamp(-1, 1)
    expected = torch.where(raw_x0.abs() <= 1, eps_theta, (a * x - clipped) / b)
    assert (raw_x0.abs() > 1).any() and (raw_x0.abs() <= 1).any()  # both branches exercised
    torch.testing.assert_close(eps, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variance", [1.0, 0.5])
def test_inversion_and_reconstruction_on_gaussian_data(variance):
    """For data ~ N(0, s²) the optimal ε is linear, ε(x_t) = √(1−ᾱ)·x_t/σ_t², σ_t² = ᾱs² + 1 − ᾱ.
    Each DDIM step then scales x by (√(ᾱ_i ᾱ_j)s² + √((1−ᾱ_i)(1−ᾱ_j)))/σ_i², so invert→reconstruct
    multiplies the image by the closed-form product of those factors."""

    def eps_fn(x, t):
        a = _alpha_bar(t)
        return (1 - a).sqrt() * x / (a * variance + 1 - a)

    ddim = DDIM(steps=20)
    torch.manual_seed(1)
    x = torch.rand(2, 3, 8, 8) * 1.6 - 0.8
    reconstruction = ddim.reconstruct(eps_fn, ddim.invert(eps_fn, x))

    abar = np.append(ddim.alphas_cumprod, 0.0)
    sigma2 = abar * variance + 1 - abar
    factor = 1.0
    for i in range(20):
        step = np.sqrt(abar[i + 1] * abar[i]) * variance + np.sqrt((1 - abar[i + 1]) * (1 - abar[i]))
        factor *= step**2 / (sigma2[i] * sigma2[i + 1])
    torch.testing.assert_close(reconstruction, factor * x, rtol=0, atol=1e-3 * float(x.abs().max()))


def test_dire_separates_on_manifold_from_off_manifold():
    """Data = ±m per pixel (exact ε in closed form via tanh). Points of the data distribution come back
    from inversion+reconstruction; points between the modes do not: DIRE's core property."""
    m = 0.5

    def eps_fn(x, t):
        a = _alpha_bar(t)
        x0_mean = m * torch.tanh(a.sqrt() * m * x / (1 - a))
        return (x - a.sqrt() * x0_mean) / (1 - a).sqrt()

    ddim = DDIM(steps=20)
    torch.manual_seed(2)
    on_manifold = (torch.randint(0, 2, (4, 3, 16, 16)).float() * 2 - 1) * m
    off_manifold = (torch.rand(4, 3, 16, 16) * 2 - 1) * 0.6 * m
    dire_on = (ddim.reconstruct(eps_fn, ddim.invert(eps_fn, on_manifold)) - on_manifold).abs().mean()
    dire_off = (ddim.reconstruct(eps_fn, ddim.invert(eps_fn, off_manifold)) - off_manifold).abs().mean()
    assert dire_on < 1e-3
    assert dire_off > 0.1
    # DistilDIRE's one-call feature separates them too
    assert ddim.eps_at_start(eps_fn, off_manifold).abs().mean() > 100 * ddim.eps_at_start(eps_fn, on_manifold).abs().mean()


def test_network_calls_counted():
    calls = []

    def eps_fn(x, t):
        calls.append(int(t[0]))
        return torch.zeros_like(x)

    ddim = DDIM(steps=20)
    x = torch.zeros(1, 3, 4, 4)
    ddim.eps_at_start(eps_fn, x)
    assert calls == [0]
    calls.clear()
    ddim.reconstruct(eps_fn, ddim.invert(eps_fn, x))
    assert calls == list(range(0, 1000, 50)) + list(range(950, -1, -50))


def test_dire_quantisation_truncates():
    x = torch.tensor([[-1.0, 0.0, 1.0]])
    rec = torch.tensor([[1.0, 0.0155, 0.99]])
    assert dire_to_uint8(x, rec).tolist() == [[255, 1, 1]]
