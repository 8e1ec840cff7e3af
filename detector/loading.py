"""Loading: checkpoint files → models (student, ε-UNet, schedule) and the digest that names them in
reports. Architectures are read from the files' keys; what to do with them comes from ``ModelConfig``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from .models.checkpoint import read_checkpoint
from .models.student import DistilDIREStudent, build_student_from_state_dict


def load_student(path: str | Path) -> DistilDIREStudent:
    """A classifier checkpoint (safetensors, or the official ``.pth`` layout) → model, arch read from keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"student weights not found: {path}")
    return build_student_from_state_dict(read_checkpoint(path))


def file_digest(paths: Iterable[Path | None]) -> str:
    """SHA-256 (first 16 hex digits) over the files (folders: every file, sorted), for reports."""
    digest = hashlib.sha256()
    for path in filter(None, paths):
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            digest.update(f.name.encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]
