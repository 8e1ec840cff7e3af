"""Image perturbations, written once: training augmentation, evaluation conditions and the app's
robustness readout all call these.

Every function maps an RGB ``PIL.Image`` to a new RGB ``PIL.Image`` (JPEG is encoded and decoded, so
the result carries the compression). ``PERTURBATIONS`` names the fixed conditions used in reports;
``AugmentChain`` draws random ones for training, the same way for both classes plus explicit
counter-shortcut steps per class.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


def jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    """The image encoded as JPEG at ``quality`` (Pillow's default 4:2:0 chroma subsampling)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    """Encode as JPEG at ``quality`` and decode again."""
    return Image.open(io.BytesIO(jpeg_bytes(image, quality))).convert("RGB")


def rescale(image: Image.Image, factor: float) -> Image.Image:
    """Resize both sides by ``factor`` (bilinear; antialiased when shrinking, as Pillow's filters are)."""
    width, height = max(1, round(image.width * factor)), max(1, round(image.height * factor))
    return image.resize((width, height), Image.BILINEAR, reducing_gap=None)


def gaussian_blur(image: Image.Image, sigma: float) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius=float(sigma)))


def median(image: Image.Image, size: int = 3) -> Image.Image:
    return image.filter(ImageFilter.MedianFilter(size=int(size)))


def add_noise(image: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    """Sensor-like noise: Gaussian with standard deviation ``sigma`` (in 0…255 levels), partly
    signal-dependent (shot noise grows with brightness), rounded back to 8 bits."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    std = sigma * np.sqrt(0.5 + pixels / 255.0)  # mean factor ≈ 1 over a mid-grey image
    noisy = pixels + rng.standard_normal(pixels.shape, dtype=np.float32) * std
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


def denoise(image: Image.Image, strength: float = 5.0) -> Image.Image:
    """Non-local-means denoising (OpenCV ``fastNlMeansDenoisingColored``), the kind of smoothing a
    phone or an editor applies; ``strength`` is the filter's h in 0…255 levels."""
    import cv2

    pixels = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
    out = cv2.fastNlMeansDenoisingColored(pixels, None, float(strength), float(strength), 5, 15)
    return Image.fromarray(np.ascontiguousarray(out[:, :, ::-1]))


#: Fixed, named conditions for evaluation reports and the robustness readout.
PERTURBATIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg_q95": lambda im: jpeg(im, 95),
    "jpeg_q75": lambda im: jpeg(im, 75),
    "jpeg_q50": lambda im: jpeg(im, 50),
    "rescale_0.5x": lambda im: rescale(im, 0.5),
    "blur_1.0": lambda im: gaussian_blur(im, 1.0),
    "median_3": lambda im: median(im, 3),
    "denoise": lambda im: denoise(im, 5.0),
}


def apply(image: Image.Image, name: str) -> Image.Image:
    """One named perturbation (``PERTURBATIONS``); ``"clean"`` returns the image unchanged."""
    if name == "clean":
        return image
    if name not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; choose from clean, {', '.join(PERTURBATIONS)}")
    return PERTURBATIONS[name](image)


# ------------------------------------------------------------------------------------ training chain
@dataclass
class AugmentChain:
    """A random processing history for a training image.

    Class-specific steps come first and exist to break the shortcuts a corpus offers: fakes sometimes
    get sensor-like noise and sometimes a "source" JPEG (photos arrive already compressed once by the
    camera, generated PNGs do not), reals sometimes get smoothed (blur, median, non-local-means, or a
    0.5× downscale). Then BOTH classes go through the same random chain — a mild rescale and JPEG at a
    random quality — so compression and size say nothing about the label. Horizontal flips last.
    """

    rescale_prob: float = 0.5
    rescale_range: tuple[float, float] = (0.5, 1.0)
    jpeg_prob: float = 0.6
    jpeg_quality: tuple[int, int] = (60, 100)
    fake_noise_prob: float = 0.25
    noise_sigma: tuple[float, float] = (1.0, 4.0)
    fake_jpeg_prob: float = 0.0  # a source JPEG for fakes, so both classes carry the same compression history
    fake_jpeg_quality: tuple[int, int] = (70, 98)
    real_smooth_prob: float = 0.45
    smooth_kinds: tuple[str, ...] = ("blur", "median", "denoise", "downscale")
    blur_sigma: tuple[float, float] = (0.4, 1.2)
    denoise_strength: tuple[float, float] = (3.0, 8.0)
    flip: bool = True

    def class_steps(self, image: Image.Image, label: int, rng: random.Random) -> tuple[Image.Image, list[str]]:
        """The counter-shortcut steps for ``label`` (1 = fake, 0 = real), as drawn."""
        if label == 1:
            ops = []
            if rng.random() < self.fake_noise_prob:
                sigma = rng.uniform(*self.noise_sigma)
                image = add_noise(image, sigma, rng.randrange(1 << 31))
                ops.append(f"noise{sigma:.1f}")
            if rng.random() < self.fake_jpeg_prob:
                quality = rng.randint(*self.fake_jpeg_quality)
                image = jpeg(image, quality)
                ops.append(f"srcjpeg{quality}")
            return image, ops
        if rng.random() < self.real_smooth_prob:
            kind = rng.choice(self.smooth_kinds)
            if kind == "blur":
                sigma = rng.uniform(*self.blur_sigma)
                return gaussian_blur(image, sigma), [f"blur{sigma:.2f}"]
            if kind == "median":
                return median(image, 3), ["median3"]
            if kind == "denoise":
                strength = rng.uniform(*self.denoise_strength)
                return denoise(image, strength), [f"nlm{strength:.1f}"]
            return rescale(image, 0.5), ["down0.5"]
        return image, []

    def shared_steps(self, image: Image.Image, rng: random.Random) -> tuple[Image.Image, list[str]]:
        """The label-blind chain: the same draws whatever the class."""
        ops = []
        if rng.random() < self.rescale_prob:
            factor = rng.uniform(*self.rescale_range)
            image = rescale(image, factor)
            ops.append(f"rescale{factor:.2f}")
        if rng.random() < self.jpeg_prob:
            quality = rng.randint(*self.jpeg_quality)
            image = jpeg(image, quality)
            ops.append(f"jpeg{quality}")
        if self.flip and rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
            ops.append("flip")
        return image, ops

    def __call__(self, image: Image.Image, label: int, rng: random.Random) -> tuple[Image.Image, list[str]]:
        """(augmented image, the list of steps applied). The class step draws from ``rng`` for either
        label, so the shared chain's draws do not depend on the class."""
        state = rng.random()  # one draw, then a dedicated stream for the class step
        image, ops = self.class_steps(image, label, random.Random(state))
        image, shared = self.shared_steps(image, rng)
        return image, ops + shared
