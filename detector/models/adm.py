"""guided-diffusion (ADM) checkpoints → diffusers ``UNet2DModel``, exactly.

The mapping follows the index walk of guided-diffusion's ``UNetModel`` (input_blocks / middle_block /
output_blocks) onto diffusers' down/mid/up blocks. Two details decide exactness
(see the project's adm-to-diffusers notes):

* the fused ``qkv`` of ``QKVAttentionLegacy`` is interleaved **per head** ([h0: q k v | h1: q k v ...]),
  so it is de-interleaved with a ``[heads, 3, head_dim, C]`` reshape, not ``chunk(3)``;
* with ``use_scale_shift_norm`` the config needs ``attn_norm_num_groups=32``, or the mid-block
  attention is built without its GroupNorm. Loading is strict, so any mismatch fails loudly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import torch

# Per-module suffix maps (guided-diffusion → diffusers).
_RESNET_SUFFIXES = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
_TOP_LEVEL = {
    "time_embed.0": "time_embedding.linear_1",
    "time_embed.2": "time_embedding.linear_2",
    "input_blocks.0.0": "conv_in",
    "out.0": "conv_norm_out",
    "out.2": "conv_out",
}


@dataclass(frozen=True)
class ADMConfig:
    """The guided-diffusion flags that fix a UNetModel's structure (defaults: ``256x256_diffusion_uncond``)."""

    image_size: int = 256
    in_channels: int = 3
    model_channels: int = 256
    out_channels: int = 6  # learn_sigma=True: [eps | variance values]
    num_res_blocks: int = 2
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    attention_ds: tuple[int, ...] = (8, 16, 32)  # downsample factors that carry attention
    num_head_channels: int = 64
    use_scale_shift_norm: bool = True
    use_new_attention_order: bool = False

    def attention_levels(self) -> set[int]:
        return {level for level in range(len(self.channel_mult)) if 2**level in self.attention_ds}


ADM_256_UNCOND = ADMConfig()


def unet_config_for_adm(cfg: ADMConfig) -> dict:
    """``UNet2DModel`` constructor arguments reproducing an ADM network (resblock_updown=True)."""
    attn = cfg.attention_levels()
    levels = range(len(cfg.channel_mult))
    return dict(
        sample_size=cfg.image_size,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        center_input_sample=False,
        time_embedding_type="positional",
        flip_sin_to_cos=True,  # ADM embeds as cat([cos, sin])
        freq_shift=0,  # ADM divides by half_dim
        down_block_types=tuple("AttnDownBlock2D" if lv in attn else "ResnetDownsampleBlock2D" for lv in levels),
        up_block_types=tuple(
            "AttnUpBlock2D" if lv in attn else "ResnetUpsampleBlock2D" for lv in reversed(levels)
        ),
        block_out_channels=tuple(cfg.model_channels * m for m in cfg.channel_mult),
        layers_per_block=cfg.num_res_blocks,
        mid_block_type="UNetMidBlock2D",
        mid_block_scale_factor=1,
        downsample_type="resnet",
        upsample_type="resnet",
        dropout=0.0,
        act_fn="silu",
        attention_head_dim=cfg.num_head_channels,
        norm_num_groups=32,
        attn_norm_num_groups=32,
        norm_eps=1e-5,
        resnet_time_scale_shift="scale_shift" if cfg.use_scale_shift_norm else "default",
        add_attention=True,
        class_embed_type=None,
        num_class_embeds=None,
    )


def infer_adm_config(state_dict: Mapping[str, torch.Tensor], base: ADMConfig = ADM_256_UNCOND) -> ADMConfig:
    """Read widths and channel counts from the tensors; the remaining flags come from ``base``."""
    if "label_emb.weight" in state_dict:
        raise ValueError("class-conditional ADM checkpoints are not supported (DistilDIRE uses unconditional ones)")
    try:
        conv_in = state_dict["input_blocks.0.0.weight"]
        conv_out = state_dict["out.2.weight"]
    except KeyError as exc:
        raise ValueError(f"not a guided-diffusion UNetModel state dict: missing {exc}") from None
    emb_out = state_dict.get("input_blocks.1.0.emb_layers.1.weight")
    scale_shift = base.use_scale_shift_norm if emb_out is None else emb_out.shape[0] == 2 * conv_in.shape[0]
    fields = asdict(base)
    fields.update(
        in_channels=conv_in.shape[1],
        model_channels=conv_in.shape[0],
        out_channels=conv_out.shape[0],
        use_scale_shift_norm=scale_shift,
    )
    return ADMConfig(**fields)


def _module_map(cfg: ADMConfig) -> dict[str, tuple[str, str]]:
    """guided-diffusion module prefix → (diffusers module prefix, kind) with kind in {plain, resnet, attn}."""
    modules: dict[str, tuple[str, str]] = {gd: (df, "plain") for gd, df in _TOP_LEVEL.items()}
    attn_levels = cfg.attention_levels()
    n_levels = len(cfg.channel_mult)

    index = 1
    for level in range(n_levels):
        for j in range(cfg.num_res_blocks):
            modules[f"input_blocks.{index}.0"] = (f"down_blocks.{level}.resnets.{j}", "resnet")
            if level in attn_levels:
                modules[f"input_blocks.{index}.1"] = (f"down_blocks.{level}.attentions.{j}", "attn")
            index += 1
        if level != n_levels - 1:
            modules[f"input_blocks.{index}.0"] = (f"down_blocks.{level}.downsamplers.0", "resnet")
            index += 1

    modules["middle_block.0"] = ("mid_block.resnets.0", "resnet")
    modules["middle_block.1"] = ("mid_block.attentions.0", "attn")
    modules["middle_block.2"] = ("mid_block.resnets.1", "resnet")

    index = 0
    for up in range(n_levels):
        level = n_levels - 1 - up
        for j in range(cfg.num_res_blocks + 1):
            modules[f"output_blocks.{index}.0"] = (f"up_blocks.{up}.resnets.{j}", "resnet")
            sub = 1
            if level in attn_levels:
                modules[f"output_blocks.{index}.1"] = (f"up_blocks.{up}.attentions.{j}", "attn")
                sub = 2
            if j == cfg.num_res_blocks and level != 0:
                modules[f"output_blocks.{index}.{sub}"] = (f"up_blocks.{up}.upsamplers.0", "resnet")
            index += 1
    return modules


def _split_qkv(tensor: torch.Tensor, heads: int, legacy: bool) -> tuple[torch.Tensor, ...]:
    """Fused qkv weight [3C, C(, 1)] or bias [3C] → (q, k, v) in diffusers' head-major row order."""
    three_c = tensor.shape[0]
    channels = three_c // 3
    rest = tensor.shape[1:2]  # (C,) for weights, () for biases
    flat = tensor.reshape(three_c, *rest)
    if legacy:  # rows ordered head, {q,k,v}, lane
        parts = flat.reshape(heads, 3, channels // heads, *rest)
        return tuple(parts[:, s].reshape(channels, *rest) for s in range(3))
    return tuple(p.reshape(channels, *rest) for p in flat.chunk(3, dim=0))


def convert_adm_state_dict(
    state_dict: Mapping[str, torch.Tensor], cfg: ADMConfig | None = None
) -> dict[str, torch.Tensor]:
    """Rename and reshape every tensor of a guided-diffusion UNetModel for ``UNet2DModel``.

    Raises ``ValueError`` on any key the layout does not account for, so nothing is silently dropped.
    """
    cfg = cfg or infer_adm_config(state_dict)
    modules = _module_map(cfg)
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        parts = key.split(".")
        depth = 2 if parts[0] in ("time_embed", "out", "middle_block") else 3
        prefix, suffix = ".".join(parts[:depth]), ".".join(parts[depth:])
        if prefix not in modules:
            raise ValueError(f"unexpected ADM key {key!r} for {cfg}")
        target, kind = modules[prefix]
        if kind == "plain":
            out[f"{target}.{suffix}"] = tensor
        elif kind == "resnet":
            module, _, param = suffix.rpartition(".")
            if module not in _RESNET_SUFFIXES:
                raise ValueError(f"unexpected ResBlock key {key!r}")
            out[f"{target}.{_RESNET_SUFFIXES[module]}.{param}"] = tensor
        else:  # attention
            module, _, param = suffix.rpartition(".")
            if module == "norm":
                out[f"{target}.group_norm.{param}"] = tensor
            elif module == "proj_out":
                out[f"{target}.to_out.0.{param}"] = tensor.reshape(tensor.shape[0], *tensor.shape[1:2])
            elif module == "qkv":
                heads = tensor.shape[0] // 3 // cfg.num_head_channels
                q, k, v = _split_qkv(tensor, heads, legacy=not cfg.use_new_attention_order)
                for name, part in zip(("to_q", "to_k", "to_v"), (q, k, v)):
                    out[f"{target}.{name}.{param}"] = part
            else:
                raise ValueError(f"unexpected attention key {key!r}")
    return out
