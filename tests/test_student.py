"""The student loads the official checkpoint layout exactly, and its structure is read from the keys."""

from __future__ import annotations

import pickle

import pytest
import torch

from detector import load_student
from detector.models import DistilDIREStudent, build_student_from_state_dict
from detector.models.student import infer_student_arch


def _randomise_batchnorm(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(7)


def test_official_layout_resnet50(tmp_path):
    """{"model": DDP state dict with module. prefixes, "optimizer", "total_steps"} → same logits."""
    torch.manual_seed(0)
    original = DistilDIREStudent(depth=50, in_channels=6)
    _randomise_batchnorm(original)
    original.eval()
    state = original.state_dict()
    assert len(state) == 320
    assert sum(p.numel() for p in original.parameters()) == 23_519_489
    assert tuple(state["student_backbone.conv1.weight"].shape) == (64, 6, 7, 7)
    assert tuple(state["student_head.2.weight"].shape) == (1, 2048)
    optimizer = torch.optim.Adam(original.parameters(), lr=1e-5)
    original(torch.randn(2, 6, 64, 64))["logit"].sum().backward()
    optimizer.step()
    original.eval()
    checkpoint = {
        "model": {f"module.{k}": v for k, v in original.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "total_steps": 1234,
    }
    path = tmp_path / "imagenet-distil-dire-11e.pth"
    torch.save(checkpoint, path)

    loaded = load_student(path).eval()
    assert loaded.arch.depth == 50 and loaded.arch.in_channels == 6
    x = torch.randn(3, 6, 64, 64)
    with torch.no_grad():
        expected, got = original(x), loaded(x)
    assert torch.equal(expected["logit"], got["logit"])
    assert got["feature"].shape == (3, 2048, 2, 2)


@pytest.mark.parametrize("depth,channels", [(18, 6), (34, 3), (50, 3)])
def test_arch_read_from_keys(depth, channels):
    model = DistilDIREStudent(depth=depth, in_channels=channels)
    arch = infer_student_arch(model.state_dict())
    assert (arch.depth, arch.in_channels) == (depth, channels)
    rebuilt = build_student_from_state_dict(model.state_dict()).eval()
    assert rebuilt(torch.zeros(1, channels, 32, 32))["logit"].shape == (1, 1)


def test_foreign_state_dict_is_refused():
    with pytest.raises(ValueError, match="student_backbone"):
        build_student_from_state_dict({"fc.weight": torch.zeros(1, 2)})


class _Payload:
    def __reduce__(self):
        return (print, ("arbitrary code ran",))


def test_pickled_objects_are_not_executed(tmp_path):
    """Checkpoints are read with weights_only=True: a pickle carrying code is refused."""
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"model": _Payload()}, fh, protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        load_student(path)
