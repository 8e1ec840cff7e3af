"""The DistilDIRE classifier: a torchvision ResNet with an n-channel stem and a one-logit head.

Module names reproduce the official checkpoints (``student_backbone.*``, ``student_head.2.*``), so
their state dicts load with strict keys. The same class serves every classifier of the project:

* ``inputs="image+eps"`` (6 channels): the DistilDIRE student, fed ``cat([image, eps])``;
* ``inputs="image"`` (3 channels): the image-only fast tier (no diffusion model at inference);
* ``inputs="dire"`` (3 channels): a DIRE-map classifier (the teacher).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torchvision import models as tvm


def _resnet10(weights: None = None, **kwargs) -> tvm.ResNet:
    """torchvision's ResNet with one BasicBlock per stage: the compact student of the bundled model."""
    return tvm.ResNet(tvm.resnet.BasicBlock, [1, 1, 1, 1], **kwargs)


# depth → (torchvision builder, blocks per layer, bottleneck?)
RESNETS = {
    10: (_resnet10, (1, 1, 1, 1), False),
    18: (tvm.resnet18, (2, 2, 2, 2), False),
    34: (tvm.resnet34, (3, 4, 6, 3), False),
    50: (tvm.resnet50, (3, 4, 6, 3), True),
    101: (tvm.resnet101, (3, 4, 23, 3), True),
    152: (tvm.resnet152, (3, 8, 36, 3), True),
}
#: What a classifier reads → its input channels ("dire": the teacher, on DIRE maps).
INPUT_KINDS = {"image+eps": 6, "image": 3, "dire": 3, "eps": 3}


def classifier_input(kind: str, image: torch.Tensor | None = None, eps: torch.Tensor | None = None,
                     dire: torch.Tensor | None = None) -> torch.Tensor:
    """The one place a classifier's input is assembled (serving and training): images and DIRE maps in
    [−1, 1], ε as the UNet gives it, stacked on the channel axis for DistilDIRE's [image, ε]."""
    if kind == "image+eps":
        return torch.cat([image, eps], dim=1)
    parts = {"image": image, "eps": eps, "dire": dire}
    if kind not in parts:
        raise ValueError(f"unknown classifier input {kind!r}; one of {', '.join(INPUT_KINDS)}")
    return parts[kind]


@dataclass(frozen=True)
class StudentArch:
    """What fixes a classifier's structure; read back from any of its state dicts."""

    depth: int = 50
    in_channels: int = 6

    @property
    def feature_channels(self) -> int:
        return 2048 if RESNETS[self.depth][2] else 512


class DistilDIREStudent(nn.Module):
    """ResNet-``depth`` backbone (random init) → global pool → Linear(·, 1).

    ``forward`` returns ``{"logit": B×1, "feature": B×C×h×w}``; ``feature`` is the post-ReLU layer4
    map used for feature distillation. Inputs are expected in [-1, 1] (no ImageNet normalisation,
    as in the reference implementation).
    """

    def __init__(self, depth: int = 50, in_channels: int = 6):
        super().__init__()
        if depth not in RESNETS:
            raise ValueError(f"unsupported ResNet depth {depth}; choose one of {sorted(RESNETS)}")
        self.arch = StudentArch(depth, in_channels)
        resnet = RESNETS[depth][0](weights=None)
        resnet.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        self.student_backbone = nn.Sequential(OrderedDict((n, getattr(resnet, n)) for n in names))
        self.student_head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(self.arch.feature_channels, 1)
        )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feature = self.student_backbone(x)
        return {"logit": self.student_head(feature), "feature": feature}


def unwrap_checkpoint(obj: object) -> dict[str, torch.Tensor]:
    """Official layout ``{"model": sd, "optimizer": ..., "total_steps": ...}`` or a bare state dict →
    a state dict without DDP's ``module.`` prefixes."""
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError("checkpoint holds no state dict (expected tensors, or a dict with a 'model' entry)")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def infer_student_arch(state_dict: Mapping[str, torch.Tensor]) -> StudentArch:
    """Depth from the number of blocks per layer (and bottleneck conv3), channels from conv1."""
    conv1 = state_dict.get("student_backbone.conv1.weight")
    if conv1 is None:
        raise ValueError("not a DistilDIRE classifier state dict: no 'student_backbone.conv1.weight'")
    blocks = []
    for layer in range(1, 5):
        found = {int(m.group(1)) for k in state_dict if (m := re.match(rf"student_backbone\.layer{layer}\.(\d+)\.", k))}
        blocks.append(max(found) + 1 if found else 0)
    bottleneck = "student_backbone.layer1.0.conv3.weight" in state_dict
    for depth, (_, layout, is_bottleneck) in RESNETS.items():
        if tuple(blocks) == layout and bottleneck == is_bottleneck:
            return StudentArch(depth=depth, in_channels=conv1.shape[1])
    raise ValueError(f"no torchvision ResNet has blocks {blocks} (bottleneck={bottleneck})")


def build_student_from_state_dict(state_dict: Mapping[str, torch.Tensor]) -> DistilDIREStudent:
    """Build the matching architecture and load ``state_dict`` with strict keys."""
    state_dict = unwrap_checkpoint(state_dict)
    arch = infer_student_arch(state_dict)
    model = DistilDIREStudent(arch.depth, arch.in_channels)
    model.load_state_dict(state_dict, strict=True)
    return model
