"""Reading weight files safely: safetensors, or torch pickles restricted to tensors (weights_only)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def read_checkpoint(path: str | Path) -> dict:
    """A ``.safetensors`` file, or a ``.pt``/``.pth`` read with ``torch.load(weights_only=True)``,
    which refuses pickled code."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)
