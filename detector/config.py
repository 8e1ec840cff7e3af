"""``ModelConfig``: the one description of a model — what it reads, how an image becomes its inputs, how
its logit becomes p(fake) and a verdict, and what it costs — declared by the registry for the official
models, read from ``card.json`` for weights folders (``from_card`` / ``to_card`` round-trip), and the
only thing ``Detector``, reports, the CLI and the app read about a model.

Like timm's pretrained configs, it is data: no file or network I/O here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from .ddim import Schedule
from .tiling import TilingConfig
from .verdict import DEFAULT_UNSURE_MARGIN, VerdictPolicy

#: What a classifier reads: image+ε (DistilDIRE, 6 channels), the image alone, or ε alone (3 channels).
INPUT_KINDS = ("image+eps", "image", "eps")

#: The authors' threshold on p(fake) for the official checkpoints (no calibration, no tuned threshold).
OFFICIAL_THRESHOLD = 0.5


@dataclass(frozen=True)
class Calibration:
    """Maps the student's raw logit z to a calibrated one, z / T + b; p(fake) = σ(z / T + b)."""

    temperature: float = 1.0
    bias: float = 0.0

    def __post_init__(self) -> None:
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"calibration temperature must be positive (got {self.temperature})")

    def logit(self, raw: torch.Tensor | float) -> torch.Tensor:
        """Raw logit(s) → calibrated logit(s) (float32 tensor)."""
        return torch.as_tensor(raw, dtype=torch.float32) / self.temperature + self.bias

    def p_fake(self, raw: torch.Tensor | float) -> torch.Tensor:
        """Raw logit(s) → calibrated p(fake)."""
        return torch.sigmoid(self.logit(raw))

    @classmethod
    def from_card(cls, entry: dict | None) -> Calibration:
        entry = entry or {}
        return cls(float(entry.get("temperature", 1.0)), float(entry.get("bias", 0.0)))

    def to_card(self) -> dict:
        return {"temperature": self.temperature, "bias": self.bias}


@dataclass(frozen=True)
class ModelConfig:
    """One model, as data. ``policy``/``calibration`` may be None in a registry entry whose numbers live in
    its ``card.json`` (the bundled models): ``registry.model_config`` fills them in from the card."""

    name: str
    label: str
    description: str
    license: str
    inputs: str = "image+eps"
    image_size: int = 256  # the classifier's input: the crop size, or the tile size when tiled
    tiling: TilingConfig | None = None  # None: resize the shorter side + centre crop (the official geometry)
    calibration: Calibration | None = field(default_factory=Calibration)
    policy: VerdictPolicy | None = field(default_factory=VerdictPolicy)
    eps_network: str = "none"  # the ε network, in words
    # the diffusion UNet of the teacher's DIRE map, in words, when it is not the ε network (a distilled ε network
    # gives ε at t = 0 only and cannot invert or reconstruct); None: DIRE runs on the ε network
    dire_network: str | None = None
    schedule: Schedule = field(default_factory=Schedule)  # the ε network's own (its folder's scheduler_config.json)
    ddim_steps: int = 20  # DDIM steps of the teacher's DIRE map: inversion + reconstruction = 2 × steps calls

    def __post_init__(self) -> None:
        if self.inputs not in INPUT_KINDS:
            raise ValueError(f"{self.name}: inputs must be one of {INPUT_KINDS} (got {self.inputs!r})")
        if self.tiling is not None and self.tiling.tile != self.image_size:
            raise ValueError(f"{self.name}: tile size {self.tiling.tile} differs from image_size {self.image_size}")

    # ------------------------------------------------------------------ derived facts (never literals)
    @property
    def uses_eps(self) -> bool:
        return self.inputs != "image"

    @property
    def in_channels(self) -> int:
        return 6 if self.inputs == "image+eps" else 3

    @property
    def inputs_per_image(self) -> int:
        """Classifier inputs per image, at most: one per tile for a tiled model, else one crop."""
        return self.tiling.max_tiles if self.tiling is not None else 1

    @property
    def unet_calls_per_image(self) -> int:
        """UNet calls for a verdict on one image (at most: a tiled model calls once per tile)."""
        return self.inputs_per_image if self.uses_eps else 0

    @property
    def dire_unet_calls(self) -> int:
        """UNet calls for the teacher's DIRE map of one input: DDIM inversion + reconstruction."""
        return 2 * self.ddim_steps if self.uses_eps else 0

    @property
    def preprocessing(self) -> str:
        """The preprocessing mode, in the card's words."""
        return "tiles" if self.tiling is not None else "resize-center-crop"

    def with_overrides(self, **overrides) -> ModelConfig:
        """A copy with fields replaced; ``threshold``, ``unsure_margin`` and ``unsure_above`` change the policy."""
        policy_keys = {k: overrides.pop(k) for k in ("threshold", "unsure_margin", "unsure_above") if k in overrides}
        config = replace(self, **overrides) if overrides else self
        if policy_keys:
            config = replace(config, policy=replace(config.policy or VerdictPolicy(), **policy_keys))
        return config

    # ------------------------------------------------------------------ card.json round trip
    @classmethod
    def from_card(cls, card: dict, variant: str, name: str | None = None) -> ModelConfig:
        """The config of ``variant`` in a weights folder's ``card.json`` (top-level keys are defaults)."""
        entry = card.get("variants", {}).get(variant)
        if entry is None:
            raise KeyError(f"the model card has no variant {variant!r}")
        preprocessing = entry.get("preprocessing", card.get("preprocessing")) or {}
        mode = preprocessing.get("mode", "resize-center-crop")
        if mode not in ("tiles", "resize-center-crop"):
            raise ValueError(f"{name or variant}: unknown preprocessing mode {mode!r}")
        tiling = TilingConfig.from_card(preprocessing) if mode == "tiles" else None
        image_size = tiling.tile if tiling else entry.get("image_size", preprocessing.get("size", card.get("image_size")))
        if image_size is None:
            raise ValueError(f"{name or variant}: the model card gives no image_size")
        return cls(
            name=name or card.get("name", variant),
            label=entry.get("label", f"{card.get('name', 'weights')} — {variant}"),
            description=entry.get("description", card.get("description", "")),
            license=card.get("license", "unknown"),
            inputs=entry.get("inputs", "image+eps"),
            image_size=int(image_size),
            tiling=tiling,
            calibration=Calibration.from_card(entry.get("calibration")),
            policy=VerdictPolicy(float(entry.get("threshold", card.get("threshold", OFFICIAL_THRESHOLD))),
                                 float(entry.get("unsure_margin", DEFAULT_UNSURE_MARGIN)), entry.get("unsure_above")),
            eps_network=entry.get("eps_network", "none" if entry.get("inputs") == "image" else "diffusion UNet"),
            ddim_steps=int(entry.get("ddim_steps", 20)),
            dire_network=entry.get("dire_network"),
        )

    def to_card(self) -> dict:
        """This config as a ``card.json`` variant entry (``from_card`` reads it back to an equal config; the
        licence is the card's, top level; the schedule is the UNet folder's ``scheduler_config.json``)."""
        policy = self.policy or VerdictPolicy()
        entry = {
            "label": self.label,
            "description": self.description,
            "inputs": self.inputs,
            "image_size": self.image_size,
            "preprocessing": self.tiling.to_card() if self.tiling else {"mode": "resize-center-crop", "size": self.image_size},
            "calibration": (self.calibration or Calibration()).to_card(),
            "threshold": policy.threshold,
            "unsure_margin": policy.unsure_margin,
            "eps_network": self.eps_network,
            "ddim_steps": self.ddim_steps,
        }
        if policy.unsure_above is not None:
            entry["unsure_above"] = policy.unsure_above
        if self.dire_network is not None:
            entry["dire_network"] = self.dire_network
        return entry

    def to_dict(self) -> dict:
        """Everything, JSON-ready, with the derived costs (for reports and ``python -m detector models``)."""
        return {"name": self.name, "license": self.license, **self.to_card(),
                "unet_calls_per_image": self.unet_calls_per_image, "dire_unet_calls": self.dire_unet_calls}

    def summary_lines(self) -> list[str]:
        """The config in a few sentences: what the CLI's ``models``, the app's model card and README show."""
        policy, calibration = self.policy, self.calibration
        geometry = (f"native-resolution {self.image_size}-px tiles (up to {self.tiling.max_tiles}, logits combined by "
                    f"{self.tiling.aggregate})" if self.tiling else
                    f"shorter side resized to {self.image_size} px, centre crop")
        unet = "a UNet distilled from a diffusion UNet" if self.dire_network else "a diffusion UNet"
        reads = {"image+eps": f"the image and the ε {unet} predicts for it at t = 0",
                 "image": "the image alone", "eps": f"the ε {unet} predicts at t = 0"}[self.inputs]
        lines = [f"Reads {reads}; {geometry}.",
                 f"ε network: {self.eps_network}; {self.unet_calls_per_image} UNet call(s) per image for a verdict"
                 + (f", {self.dire_unet_calls} more for the teacher's DIRE map (DDIM-{self.ddim_steps}"
                    + (f", on {self.dire_network}" if self.dire_network else "") + ")." if self.uses_eps
                    else "; no DIRE map.")]
        if policy is not None:
            low, high = policy.band
            lines.append(f"Verdict: fake at p(fake) ≥ {policy.threshold:.4g}, unsure between {low:.3g} and {high:.3g}.")
        if calibration is not None and calibration != Calibration():
            sign = "−" if calibration.bias < 0 else "+"
            lines.append(f"Calibration: p = σ(z / {calibration.temperature:.4g} {sign} {abs(calibration.bias):.4g}).")
        lines.append(f"Licence: {self.license.rstrip('.')}.")
        return lines
