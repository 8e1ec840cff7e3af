"""The recipe's configuration: one JSON file holds every stage's settings (configs as data).

``load_config(path)`` reads it into nested dataclasses; unknown keys are an error, missing keys
take the defaults below (the defaults are the bundled recipe's values).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DataConfig:
    photos: str = "../shared/data/real_photos"  # "": data/ already holds {train,val,test}/{reals,fakes}
    patch_size: int = 64
    val_photos: int = 6
    test_photos: int = 6
    patches_per_photo: dict = field(default_factory=lambda: {"train": 192, "val": 48, "test": 48})
    min_window: int = 64  # crop side in source pixels, before the resize to patch_size
    seed: int = 0


@dataclass
class DiffusionConfig:
    train: bool = True  # False: use the UNet already at workdir/diffusion/unet (e.g. a converted ADM)
    block_out_channels: list = field(default_factory=lambda: [32, 64, 64, 128])
    attention_levels: list = field(default_factory=lambda: [3])
    layers_per_block: int = 1
    batch_size: int = 32
    lr: float = 2e-4
    ema_decay: float = 0.999
    max_steps: int = 100_000
    max_minutes: float = 90.0
    checkpoint_every: int = 500
    bf16: bool = True
    sample_steps: int = 25
    seed: int = 0


@dataclass
class FakesConfig:
    sample_steps: int = 25  # DDIM steps for unconditional samples
    regen_strength: list = field(default_factory=lambda: [0.2, 0.5])  # SDEdit noise level, fraction of T
    regen_steps: int = 20
    per_split: dict = field(default_factory=lambda: {"train": 768, "val": 192, "test": 288})  # None: as many as reals
    regen_fraction: float = 0.5
    batch_size: int = 64
    bf16: bool = True  # generation precision (the fakes are just images; the detector's ε is always fp32)
    seed: int = 1


@dataclass
class CacheConfig:
    dire_steps: int = 20
    dire_bf16: bool = True  # DIRE maps (teacher input only) under bf16 autocast; ε is always fp32
    unet_fp16: bool = True  # use (and export) the UNet rounded to float16, the bundled format
    batch_size: int = 64
    per_class: dict = field(default_factory=lambda: {"train": 768, "val": 192, "test": 288})  # None: all
    seed: int = 0


@dataclass
class ClassifierConfig:
    depth: int = 10
    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    kd_weight: float = 1.0  # λ for MSE(student layer4, teacher layer4)
    logit_kd_weight: float = 1.0  # image-only student: BCE towards the DistilDIRE student's probabilities
    jpeg_prob: float = 0.5
    jpeg_quality: list = field(default_factory=lambda: [60, 100])
    resize_prob: float = 0.2  # random down-and-up resize, both classes alike
    cutmix_prob: float = 0.0
    flip: bool = True
    bf16: bool = True
    seed: int = 0


@dataclass
class RecipeConfig:
    name: str = "bundled"
    workdir: str = "runs/bundled"
    data: DataConfig = field(default_factory=DataConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    fakes: FakesConfig = field(default_factory=FakesConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    threads: int = 0  # 0: torch's default

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, values: dict):
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    kwargs = {}
    for key, value in values.items():
        default = names[key].default_factory() if names[key].default_factory is not dataclasses.MISSING else None
        kwargs[key] = _build(type(default), value) if dataclasses.is_dataclass(default) else value
    return cls(**kwargs)


def load_config(path: str | Path | None = None, **overrides) -> RecipeConfig:
    """The recipe config from a JSON file (or the defaults), with top-level ``overrides``."""
    values = json.loads(Path(path).read_text()) if path else {}
    values.update(overrides)
    return _build(RecipeConfig, values)


def config_parser(doc: str | None) -> argparse.ArgumentParser:
    """The command line every stage shares: its docstring as help, and ``--config``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="train/configs/bundled.json", help="recipe config (JSON)")
    return parser
