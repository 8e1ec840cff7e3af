"""The one perturbation module: named conditions and the training augmentation chain."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import make_photo
from PIL import Image

from detector.perturb import PERTURBATIONS, AugmentChain, add_noise, apply, denoise, jpeg, jpeg_bytes, rescale


def test_named_conditions_return_rgb_images_of_the_expected_size():
    image = make_photo(96, 64, seed=1)
    for name in PERTURBATIONS:
        out = apply(image, name)
        assert isinstance(out, Image.Image) and out.mode == "RGB"
        assert out.size == ((48, 32) if name == "rescale_0.5x" else (96, 64)), name
    assert apply(image, "clean") is image
    with pytest.raises(ValueError, match="unknown perturbation"):
        apply(image, "sharpen")


def test_jpeg_quality_orders_the_error_and_bytes_decode():
    image = make_photo(96, 64, seed=2)
    pixels = np.asarray(image, dtype=np.float32)
    errors = [np.abs(np.asarray(jpeg(image, q), dtype=np.float32) - pixels).mean() for q in (95, 75, 50)]
    assert errors[0] < errors[1] < errors[2]
    assert jpeg_bytes(image, 75)[:2] == b"\xff\xd8"


def test_smoothing_and_noise_move_the_high_frequencies_the_right_way():
    image = make_photo(96, 96, seed=3)

    def roughness(im):
        a = np.asarray(im, dtype=np.float32)
        return np.abs(np.diff(a, axis=1)).mean()

    assert roughness(apply(image, "blur_1.0")) < roughness(image)
    assert roughness(apply(image, "median_3")) < roughness(image)
    assert roughness(denoise(image, 8.0)) < roughness(image)
    assert roughness(add_noise(image, 4.0, seed=0)) > roughness(image)
    assert add_noise(image, 4.0, seed=1).tobytes() == add_noise(image, 4.0, seed=1).tobytes()
    assert rescale(image, 0.5).size == (48, 48)


def test_both_classes_get_the_identical_shared_chain():
    """Without the class-specific steps, a photo and a generated image see the same history."""
    chain = AugmentChain(fake_noise_prob=0.0, real_smooth_prob=0.0)
    image = make_photo(128, 96, seed=4)
    for seed in range(20):
        real, real_ops = chain(image, 0, random.Random(seed))
        fake, fake_ops = chain(image, 1, random.Random(seed))
        assert real_ops == fake_ops and real.tobytes() == fake.tobytes()


def test_class_steps_do_not_shift_the_shared_draws():
    """The counter-shortcut step draws from its own stream: the rescale/JPEG/flip draws stay the same."""
    plain = AugmentChain(fake_noise_prob=0.0, real_smooth_prob=0.0)
    with_class_steps = AugmentChain(fake_noise_prob=1.0, real_smooth_prob=1.0, smooth_kinds=("blur",))
    image = make_photo(128, 96, seed=5)
    for seed in range(10):
        _, shared = plain(image, 1, random.Random(seed))
        _, fake_ops = with_class_steps(image, 1, random.Random(seed))
        _, real_ops = with_class_steps(image, 0, random.Random(seed))
        assert fake_ops[0].startswith("noise") and real_ops[0].startswith("blur")
        assert fake_ops[1:] == shared and real_ops[1:] == shared


def test_counter_shortcut_steps_are_class_specific():
    chain = AugmentChain(rescale_prob=0, jpeg_prob=0, flip=False, fake_noise_prob=1.0, real_smooth_prob=1.0,
                         fake_jpeg_prob=1.0)
    image = make_photo(64, 64, seed=6)
    kinds = {tuple(op.rstrip("0123456789.") for op in chain(image, 0, random.Random(s))[1]) for s in range(40)}
    assert kinds == {("blur",), ("median",), ("nlm",), ("down",)}
    for s in range(5):  # fakes: sensor-like noise, then a source JPEG like a camera's
        ops = chain(image, 1, random.Random(s))[1]
        assert ops[0].startswith("noise") and ops[1].startswith("srcjpeg") and len(ops) == 2
