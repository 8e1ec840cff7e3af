"""Diffusion UNets: the one place that builds and loads them.

Any diffusers ``UNet2DModel`` serves as the ε-network. Two sources are understood:

* a diffusers folder (``config.json`` + ``diffusion_pytorch_model.safetensors``), e.g. the bundled
  model or the output of ``python -m detector convert-adm``;
* a guided-diffusion checkpoint (``.pt``/``.pth`` or a ``.safetensors`` with ADM keys), converted on
  load (exact, strict).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import UNet2DModel

from .adm import ADMConfig, convert_adm_state_dict, infer_adm_config, unet_config_for_adm
from .checkpoint import read_checkpoint


def small_unet_config(
    sample_size: int = 64,
    block_out_channels: tuple[int, ...] = (32, 64, 64, 128),
    attention_levels: tuple[int, ...] = (3,),
    layers_per_block: int = 1,
    norm_num_groups: int = 32,
) -> dict:
    """A compact ADM-style UNet (scale-shift ResBlocks, resnet up/down, attention on the coarsest
    levels) for the bundled, locally trained model. ε-prediction, 3 output channels."""
    n = len(block_out_channels)
    return dict(
        sample_size=sample_size,
        in_channels=3,
        out_channels=3,
        time_embedding_type="positional",
        flip_sin_to_cos=True,
        freq_shift=0,
        down_block_types=tuple("AttnDownBlock2D" if i in attention_levels else "ResnetDownsampleBlock2D" for i in range(n)),
        up_block_types=tuple(
            "AttnUpBlock2D" if i in attention_levels else "ResnetUpsampleBlock2D" for i in reversed(range(n))
        ),
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        downsample_type="resnet",
        upsample_type="resnet",
        attention_head_dim=32,
        norm_num_groups=norm_num_groups,
        attn_norm_num_groups=32,
        resnet_time_scale_shift="scale_shift",
        act_fn="silu",
    )


def build_unet(config: dict) -> UNet2DModel:
    return UNet2DModel(**config)


def unet_from_adm_state_dict(state_dict: dict[str, torch.Tensor], cfg: ADMConfig | None = None) -> UNet2DModel:
    """Convert a guided-diffusion state dict and load it strictly into a matching ``UNet2DModel``."""
    cfg = cfg or infer_adm_config(state_dict)
    model = build_unet(unet_config_for_adm(cfg))
    model.load_state_dict(convert_adm_state_dict(state_dict, cfg), strict=True)
    return model


def _is_adm_state_dict(state_dict: dict) -> bool:
    return "input_blocks.0.0.weight" in state_dict


def load_unet(source: str | Path, adm_config: ADMConfig | None = None) -> UNet2DModel:
    """A diffusers UNet folder, or a guided-diffusion checkpoint file (converted on load; structure
    flags from ``adm_config``, default the 256×256 unconditional model, widths read from the file)."""
    path = Path(source)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a diffusers UNet folder (no config.json)")
        return UNet2DModel.from_pretrained(path, torch_dtype=torch.float32)  # fp16 files are upcast on load
    if not path.is_file():
        raise FileNotFoundError(f"UNet weights not found: {path}")
    state_dict = read_checkpoint(path)
    if not _is_adm_state_dict(state_dict):
        raise ValueError(
            f"{path} is not a guided-diffusion UNetModel checkpoint; pass a diffusers UNet folder instead"
        )
    cfg = infer_adm_config(state_dict, adm_config) if adm_config else None
    return unet_from_adm_state_dict(state_dict, cfg)
