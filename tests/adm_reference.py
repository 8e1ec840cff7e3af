"""An independent guided-diffusion-style ADM UNet, written from the architecture description only.

Its attribute names reproduce guided-diffusion's state-dict keys (input_blocks / middle_block /
output_blocks, in_layers / emb_layers / out_layers, qkv / proj_out), and its attention uses the legacy
per-head interleaved qkv layout. It serves as the reference the diffusers conversion must match.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half).to(t.device)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def gn(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, ch, eps=1e-5)


class ResBlock(nn.Module):
    def __init__(self, ch: int, emb_ch: int, out: int, up: bool = False, down: bool = False, scale_shift: bool = True):
        super().__init__()
        self.up, self.down, self.scale_shift = up, down, scale_shift
        self.in_layers = nn.Sequential(gn(ch), nn.SiLU(), nn.Conv2d(ch, out, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_ch, 2 * out if scale_shift else out))
        self.out_layers = nn.Sequential(gn(out), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(out, out, 3, padding=1))
        self.skip_connection = nn.Identity() if ch == out else nn.Conv2d(ch, out, 1)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.up:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.down:
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        norm, act, conv = self.in_layers
        h = conv(self._resample(act(norm(x))))
        x = self._resample(x)
        e = self.emb_layers(emb)[:, :, None, None]
        out_norm, out_rest = self.out_layers[0], self.out_layers[1:]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = out_norm(h) * (1 + scale) + shift
        else:
            h = out_norm(h + e)
        return self.skip_connection(x) + out_rest(h)


class AttentionBlock(nn.Module):
    def __init__(self, ch: int, head_channels: int):
        super().__init__()
        self.heads = ch // head_channels
        self.norm = gn(ch)
        self.qkv = nn.Conv1d(ch, 3 * ch, 1)
        self.proj_out = nn.Conv1d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        flat = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(flat))  # (B, 3C, T), rows interleaved per head
        d = c // self.heads
        q, k, v = qkv.reshape(b * self.heads, 3 * d, -1).split(d, dim=1)
        scale = 1 / math.sqrt(math.sqrt(d))
        weight = torch.softmax(torch.einsum("bct,bcs->bts", q * scale, k * scale), dim=-1)
        a = torch.einsum("bts,bcs->bct", weight, v).reshape(b, c, -1)
        return (flat + self.proj_out(a)).reshape(b, c, hh, ww)


class Step(nn.Sequential):
    """A container whose children take (x, emb) when they are ResBlocks."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class ADMReference(nn.Module):
    def __init__(self, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=2,
                 channel_mult=(1, 1, 2, 2, 4, 4), attention_ds=(8, 16, 32), head_channels=16, scale_shift=True):
        super().__init__()
        mc = model_channels
        emb = 4 * mc
        self.mc = mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.input_blocks = nn.ModuleList([Step(nn.Conv2d(in_channels, mc, 3, padding=1))])
        chans, ch, ds = [mc], mc, 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [ResBlock(ch, emb, mult * mc, scale_shift=scale_shift)]
                ch = mult * mc
                if ds in attention_ds:
                    layers.append(AttentionBlock(ch, head_channels))
                self.input_blocks.append(Step(*layers))
                chans.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(Step(ResBlock(ch, emb, ch, down=True, scale_shift=scale_shift)))
                chans.append(ch)
                ds *= 2
        self.middle_block = Step(ResBlock(ch, emb, ch, scale_shift=scale_shift), AttentionBlock(ch, head_channels),
                                 ResBlock(ch, emb, ch, scale_shift=scale_shift))
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(channel_mult))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [ResBlock(ch + chans.pop(), emb, mult * mc, scale_shift=scale_shift)]
                ch = mult * mc
                if ds in attention_ds:
                    layers.append(AttentionBlock(ch, head_channels))
                if level and i == num_res_blocks:
                    layers.append(ResBlock(ch, emb, ch, up=True, scale_shift=scale_shift))
                    ds //= 2
                self.output_blocks.append(Step(*layers))
        self.out = nn.Sequential(gn(ch), nn.SiLU(), nn.Conv2d(mc, out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_embed(timestep_embedding(t, self.mc))
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)


@torch.no_grad()
def rerandomise(model: nn.Module, seed: int = 0) -> None:
    """Every parameter random (zero-initialised projections would hide attention-mapping errors)."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.GroupNorm):
            module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=gen))
            module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=gen))
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) / math.sqrt(fan_in))
            if module.bias is not None:
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
