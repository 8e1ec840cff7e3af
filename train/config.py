"""The recipe's configuration: one JSON file holds every stage's settings (configs as data), and
``WorkDir`` is the one place that knows where each stage writes inside the work directory.

``load_config(path)`` reads the JSON into nested dataclasses; unknown keys are an error, missing keys
take the defaults below (the defaults are the bundled recipe's values).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CorpusConfig:
    """Which labelled images, how they are grouped into sources, and the leave-source-out folds."""

    manifests: list = field(default_factory=lambda: ["../shared/data/public_corpus/manifest.csv"])
    photo_dirs: list = field(default_factory=lambda: ["../shared/data/real_photos"])  # each one source of reals
    image_dirs: list = field(default_factory=list)  # user data: DIR/{reals,fakes}/<source>/*
    families: dict = field(default_factory=dict)  # generator → family; unlisted generators are their own family
    trim_bottom: dict = field(default_factory=lambda: {"dalle-2": 16})  # generator → rows cut (DALL·E 2 colour bar)
    max_source_size: int = 40  # larger photo sources are split into chunks (by file-name hash) for the folds
    folds: int = 4
    seed: int = 0


@dataclass
class CropsConfig:
    """Training crops: random native-resolution tiles after a random processing history (``AugmentChain``)."""

    tile: int = 64
    draws: int = 6  # augmentation draws per image (scaled per group, see group_balance)
    crops_per_draw: int = 4
    window: int = 384  # each draw works on a random window of at most this side (speed; never a downscale)
    group_balance: float = 0.5  # draws ∝ (median group size / group size) ** this, clipped to [1/2, 3]×
    augment: dict = field(default_factory=dict)  # detector.perturb.AugmentChain fields
    batch_size: int = 64
    dire_steps: int = 10  # DDIM steps each way for the teacher's DIRE maps (built only when kd_weight > 0)
    dire_fraction: float = 0.3  # share of the training crops that get a DIRE map (2 × dire_steps calls each)
    # another work directory of the same corpus and crop settings: take its crop and tile PIXELS and compute only
    # ε anew (an ε-network study then skips the augmentation and decoding, with identical pixels)
    pixels_from: str = ""
    seed: int = 0


@dataclass
class DiffusionConfig:
    """The ε-network. ``train: false`` uses ``init`` as it is (default: the bundled UNet)."""

    train: bool = False
    init: str = "bundled"  # "bundled", a diffusers UNet folder, or "" to start from scratch
    schedule: dict = field(default_factory=dict)  # scheduler-config keys for a UNet from scratch (default: ADM linear)
    block_out_channels: list = field(default_factory=lambda: [32, 64, 64, 128])
    attention_levels: list = field(default_factory=lambda: [3])
    layers_per_block: int = 1
    patches: int = 20000  # native-scale crops of the training photos (rescale 0.5–1 only)
    batch_size: int = 32
    lr: float = 2e-4
    ema_decay: float = 0.999
    small_t_fraction: float = 0.5  # share of steps with t < small_t_max: ε at t = 0 is what the detector reads
    small_t_max: int = 50
    max_steps: int = 100_000
    max_minutes: float = 60.0
    checkpoint_every: int = 500
    bf16: bool = True
    sample_steps: int = 25
    norm_num_groups: int = 32
    # distillation instead of diffusion training (train.distil): a fresh UNet of the widths above learns the
    # ε at t = 0 of this ε-network ("bundled" or a diffusers folder) on the training crops of the PHOTOS only
    distil_from: str = ""
    distil_steps: int = 4000
    distil_lr: float = 2e-3
    seed: int = 0


@dataclass
class ClassifierConfig:
    depth: int = 10  # ResNet-10: two of them and the UNet fit the 30 MB weights budget in float16
    epochs: int = 10
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 5e-4
    kd_weight: float = 0.0  # λ for MSE(student layer4, DIRE-teacher layer4); 0: BCE only
    logit_kd_weight: float = 1.0  # image-only tier: BCE towards the DistilDIRE student's probabilities
    label_smoothing: float = 0.05
    variants: list = field(default_factory=lambda: ["student", "image-only"])  # the image-only tier distils from the student
    learning_curve: list = field(default_factory=list)  # shares of the training sources for extra fold students, e.g. [0.25, 0.5, 0.75]
    bf16: bool = True
    seed: int = 0


@dataclass
class EvalConfig:
    """Image-level evaluation through the inference tiling, and how the threshold is chosen."""

    max_tiles: int = 16
    aggregations: list = field(default_factory=lambda: ["mean_logit", "median_logit", "mean_prob", "top50_mean", "top25_mean", "max_logit"])
    conditions: dict = field(default_factory=lambda: {  # condition → which classes it is applied to
        "clean": "both", "jpeg_q95": "both", "jpeg_q75": "both", "jpeg_q50": "both", "rescale_0.5x": "both",
        "blur_1.0": "reals", "median_3": "reals", "denoise": "reals"})
    # the threshold rule (train.threshold): a name from RULES, or "auto" — the candidate whose threshold, chosen
    # on three folds, does best on the fourth fold's unseen sources (mean held-out FPR <= max_fpr first)
    threshold_rule: str = "auto"
    threshold_rules: list = field(default_factory=lambda: ["pooled-fpr-5", "pooled-fpr-10", "source-mean-fpr-5",
                                                           "source-mean-fpr-10", "balanced-p-0.5", "youden"])
    max_fpr: float = 0.08
    batch_size: int = 64


@dataclass
class RecipeConfig:
    name: str = "bundled"
    workdir: str = "runs/bundled"
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    crops: CropsConfig = field(default_factory=CropsConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    threads: int = 0  # 0: torch's default

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def work(self) -> WorkDir:
        return WorkDir(Path(self.workdir))

    @property
    def pixel_source(self) -> WorkDir | None:
        """The work directory whose crop and tile pixels this recipe reuses (``crops.pixels_from``), if any."""
        return WorkDir(Path(self.crops.pixels_from)) if self.crops.pixels_from else None


@dataclass(frozen=True)
class WorkDir:
    """Every path a stage reads or writes, relative to the work directory."""

    root: Path

    @property
    def records(self) -> Path:  # the corpus table with sources, families and folds
        return self.root / "corpus" / "records.json"

    @property
    def diffusion(self) -> Path:
        return self.root / "diffusion"

    @property
    def diffusion_checkpoint(self) -> Path:
        return self.diffusion / "checkpoint.pt"

    @property
    def trained_unet(self) -> Path:
        return self.diffusion / "unet"

    @property
    def crops(self) -> Path:  # training crops, their ε and metadata
        return self.root / "crops" / "train.safetensors"

    @property
    def crops_meta(self) -> Path:
        return self.root / "crops" / "train.json"

    @property
    def crops_dire(self) -> Path:  # DIRE maps of a share of the training crops (the teacher's input)
        return self.root / "crops" / "dire.safetensors"

    def tiles(self, condition: str) -> Path:  # inference tiles of every image under one condition
        return self.root / "tiles" / f"{condition}.safetensors"

    def tiles_meta(self, condition: str) -> Path:
        return self.root / "tiles" / f"{condition}.json"

    def classifier(self, name: str, fold: int | None) -> Path:
        return self.root / "classifiers" / f"{name}-{'all' if fold is None else f'fold{fold}'}.safetensors"

    def classifier_log(self, name: str, fold: int | None) -> Path:
        return self.classifier(name, fold).with_suffix(".json")

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def metrics(self) -> Path:
        return self.eval / "metrics.json"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"


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


def _merge(base: dict, changes: dict) -> dict:
    """``changes`` over ``base``: nested objects merged key by key, anything else (lists too) replaced."""
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def read_config_values(path: str | Path) -> dict:
    """A config file's values; ``"base": "other.json"`` (relative to the file) means: that file's values,
    with this file's on top — so an ablation is a few lines beside the config it varies."""
    path = Path(path)
    values = json.loads(path.read_text())
    base = values.pop("base", None)
    return _merge(read_config_values(path.parent / base), values) if base else values


def load_config(path: str | Path | None = None, **overrides) -> RecipeConfig:
    """The recipe config from a JSON file (or the defaults), with top-level ``overrides``."""
    values = read_config_values(path) if path else {}
    values.update(overrides)
    return _build(RecipeConfig, values)


def config_parser(doc: str | None) -> argparse.ArgumentParser:
    """The command line every stage shares: its docstring as help, and ``--config``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="train/configs/bundled.json", help="recipe config (JSON)")
    return parser
