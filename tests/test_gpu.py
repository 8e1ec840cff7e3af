"""The CUDA path (skipped without a GPU; bench/gpu.sh runs these on a GPU machine)."""

from __future__ import annotations

import pytest
import torch
from conftest import encode, make_photo

from detector import Detector

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_cuda_fp32_matches_cpu(tiny_weights):
    image = encode(make_photo(120, 90, seed=5))
    cpu = Detector.from_pretrained(str(tiny_weights), device="cpu").detect_one(image)
    cuda = Detector.from_pretrained(str(tiny_weights), device="cuda").detect_one(image)
    assert torch.backends.cuda.matmul.allow_tf32 is False  # exact fp32 on the card
    assert cuda.p_fake == pytest.approx(cpu.p_fake, abs=1e-4)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_half_precision_student_and_channels_last(tiny_weights, precision):
    image = encode(make_photo(120, 90, seed=6))
    exact = Detector.from_pretrained(str(tiny_weights), device="cuda").detect_one(image)
    fast = Detector.from_pretrained(str(tiny_weights), device="cuda", precision=precision, channels_last=True,
                                    unet_precision="bf16").detect_one(image)
    assert fast.ok and abs(fast.p_fake - exact.p_fake) < 0.05


def test_cuda_batches_and_dire(tiny_weights):
    images = [encode(make_photo(100 + 8 * i, 80, seed=i)) for i in range(6)]
    detector = Detector.from_pretrained(str(tiny_weights), device="cuda")
    results = detector.detect(images, with_dire=True, batch_size=4)
    assert all(r.ok and r.dire is not None and r.unet_calls == 41 for r in results)
