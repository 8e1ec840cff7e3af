"""Small helpers shared by the training stages: seeding, image folders as tensors, grids, JSON."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from detector.preprocess import to_model_tensor, to_signed, to_uint8  # noqa: F401  (to_uint8: re-exported)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_threads(threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)


def to_unit(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float32 [−1, 1], as the detector converts (``detector.preprocess.to_signed``)."""
    return to_signed(x_uint8)


def model_inputs(x_uint8: torch.Tensor, size: int) -> torch.Tensor:
    """N×3×H×W uint8 → N×3×size×size in [−1, 1] through the detector's own preprocessing, so training
    tensors are bit-identical to what ``Detector`` computes from the same pixels."""
    return torch.stack([to_model_tensor(Image.fromarray(img.permute(1, 2, 0).numpy()), size) for img in x_uint8])


def save_png(x_uint8: torch.Tensor, path: Path) -> None:
    Image.fromarray(x_uint8.permute(1, 2, 0).cpu().numpy()).save(path)


def save_grid(x_uint8: torch.Tensor, path: Path, columns: int = 8) -> None:
    n, _, h, w = x_uint8.shape
    rows = (n + columns - 1) // columns
    grid = torch.zeros(3, rows * h, columns * w, dtype=torch.uint8)
    for i in range(n):
        r, c = divmod(i, columns)
        grid[:, r * h : (r + 1) * h, c * w : (c + 1) * w] = x_uint8[i]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(grid, path)


def unet_folder(name: str) -> Path | None:
    """A UNet named in a config: "bundled" (the bundled DIFFUSION UNet's folder: ``unet/``, also where the bundled
    weights carry a distilled ε network in ``eps-unet/``), a diffusers UNet folder, or None for ""."""
    from detector.registry import resolve_weights

    if name in ("bundled", "bundled-fast"):
        spec = resolve_weights("bundled")
        return spec.dire_unet or spec.unet
    return Path(name) if name else None


def init_unet_folder(cfg) -> Path | None:
    """Where ``diffusion.init`` points (None: the diffusion stage starts from scratch)."""
    return unet_folder(cfg.diffusion.init)


def unet_source(cfg) -> Path:
    """The one answer to "which ε-network does this recipe use": the UNet the diffusion stage trained, or,
    when it trains none, the one ``diffusion.init`` names (a distilled ε-network is a trained one)."""
    if cfg.diffusion.train or cfg.diffusion.distil_from:
        return cfg.work.trained_unet
    folder = init_unet_folder(cfg)
    if folder is None:
        raise ValueError("diffusion.train is off and diffusion.init is empty: the recipe has no ε-network")
    return folder


def schedule_of(unet_folder: Path, default: dict | None = None):
    """The noise schedule a UNet was trained with: its folder's ``scheduler_config.json``, else
    ``default`` (a scheduler-config dict, e.g. ``diffusion.schedule``), else ADM's linear schedule."""
    from detector.ddim import Schedule

    config = Path(unet_folder) / "scheduler_config.json"
    if config.is_file():
        return Schedule.from_scheduler_config(json.loads(config.read_text()))
    return Schedule.from_scheduler_config(default or {})


def diffusion_unet_source(cfg) -> Path:
    """The recipe's diffusion model (DIRE maps, generated samples): the teacher of a distilled ε network, which
    gives ε at t = 0 only, else the ε network itself."""
    return unet_folder(cfg.diffusion.distil_from) if cfg.diffusion.distil_from else unet_source(cfg)


def eps_extractor(cfg, network: str = "eps"):
    """``detector.EpsExtractor`` over the recipe's ε network (``network="diffusion"``: its diffusion model), with
    its folder's noise schedule."""
    from detector.features import EpsExtractor

    folder = diffusion_unet_source(cfg) if network == "diffusion" else unet_source(cfg)
    return EpsExtractor(shipped_unet(folder), schedule_of(folder, cfg.diffusion.schedule))


def shipped_unet(folder: Path):
    """The UNet as it ships: parameters rounded through float16 (the export format), kept in float32,
    so cached ε equals what the exported weights compute. A no-op for weights already in float16."""
    import torch

    from detector.models import load_unet

    unet = load_unet(folder).float().eval()
    with torch.no_grad():
        for p in unet.parameters():
            p.copy_(p.half().float())
    return unet


def write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


def autocast_eps_fn(unet, bf16: bool):
    """``eps_fn(x, t)`` for ``detector.ddim``: the UNet's ε channels, optionally under CPU bf16 autocast."""

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            return unet(x, t).sample[:, :3].float()

    return eps_fn
