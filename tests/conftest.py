"""Shared fixtures: tiny, randomly initialised models in a weights folder, and images made on the fly."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from detector.models import DistilDIREStudent, build_unet, small_unet_config
from detector.registry import save_weights

TINY_SIZE = 32
# ONNX Runtime exports (detector.runtime) go to a folder of this test run, never the user's cache
os.environ.setdefault("DISTILDIRE_CACHE", tempfile.mkdtemp(prefix="distildire-test-cache-"))


def make_photo(width: int = 96, height: int = 64, seed: int = 0) -> Image.Image:
    """A smooth, photo-like RGB test image (gradients plus mild noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 7 + yy / 11)], axis=-1) * 200 + 20
    pixels = np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A weights folder like detector/weights/: 6-ch ResNet-18 student, 3-ch image-only student, tiny UNet."""
    torch.manual_seed(0)
    unet = build_unet(small_unet_config(sample_size=TINY_SIZE, block_out_channels=(32, 64), attention_levels=(1,)))
    students = {
        "distildire": (DistilDIREStudent(depth=18, in_channels=6), "image+eps"),
        "image-only": (DistilDIREStudent(depth=18, in_channels=3), "image"),
    }
    for model, _ in students.values():  # non-trivial BatchNorm statistics, so eval mode matters
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    folder = tmp_path_factory.mktemp("weights")
    return save_weights(folder, students, unet=unet, card={"name": "tiny-test", "threshold": 0.5, "license": "test"})


@pytest.fixture
def image_files(tmp_path) -> dict[str, Path]:
    """Two good images and several bad files in one folder."""
    files = {
        "good_png": tmp_path / "a_good.png",
        "good_jpg": tmp_path / "b_good.jpg",
        "truncated": tmp_path / "c_truncated.jpg",
        "text": tmp_path / "d_notes.png",
        "empty": tmp_path / "e_empty.jpg",
    }
    files["good_png"].write_bytes(encode(make_photo(seed=1)))
    files["good_jpg"].write_bytes(encode(make_photo(80, 120, seed=2), "JPEG", quality=90))
    jpeg = encode(make_photo(seed=3), "JPEG", quality=90)
    files["truncated"].write_bytes(jpeg[: len(jpeg) // 2])
    files["text"].write_bytes(b"this is not an image at all\n")
    files["empty"].write_bytes(b"")
    return files
