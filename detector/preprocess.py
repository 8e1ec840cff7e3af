"""Decoding whatever users upload, and the official geometry.

``load_image`` turns a path, bytes or PIL image into an RGB ``PIL.Image`` or raises
``DetectorInputError`` with a sentence a person understands. ``to_model_tensor`` applies the
reference protocol: [0, 1] → [−1, 1], resize the shorter side to the model size (bilinear,
antialiased, on the tensor), center crop.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

ImageInput = str | os.PathLike | bytes | bytearray | Image.Image

#: Largest accepted image, in pixels (about 8k × 8k). Beyond this Pillow's decompression-bomb guard
#: would otherwise only warn; we refuse before decoding.
MAX_PIXELS = 64_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

#: Most elongated accepted image: the official geometry resizes the SHORTER side to the model size,
#: so a 1×60000 strip would become a 64×3.8M tensor.
MAX_ASPECT = 16

#: Decoders we allow. Whitelisting keeps exotic plugins (EPS would run Ghostscript) away from uploads.
Image.init()  # register every installed plugin, so the whitelist can be checked against them
ALLOWED_FORMATS = tuple(
    f for f in ("JPEG", "MPO", "PNG", "WEBP", "GIF", "TIFF", "BMP", "AVIF", "PPM", "HEIF") if f in Image.OPEN
)



class DetectorInputError(ValueError):
    """An input that cannot be analysed; the message is meant for the person who supplied it."""


@dataclass
class LoadedImage:
    image: Image.Image  # RGB, orientation applied
    source: str  # a name for reports: file name, or "<bytes>" / "<PIL image>"
    original_size: tuple[int, int]
    original_format: str | None
    original_mode: str
    frames: int = 1  # > 1: an animated image, of which only the first frame is used


def _source_name(item: object, index: int | None = None) -> str:
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    suffix = "" if index is None else f" #{index}"
    return ("<bytes>" if isinstance(item, (bytes, bytearray)) else "<PIL image>") + suffix


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → RGB without clipping high bit depths or dropping transparency onto black."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = float(array.max()) if array.size else 0.0
        # the container's range when it is evident (8/16-bit, or [0, 1] floats), else the data's peak
        peak = next((r for r in (1.0, 255.0, 65535.0) if top <= r), top)
        if mode.startswith("I;16"):
            peak = 65535.0
        array = np.clip(array, 0.0, None)
        array = np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    if mode == "P" and "transparency" in image.info or mode in ("PA",):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def _check_bytes(size: int, max_bytes: int | None) -> None:
    if size == 0:
        raise DetectorInputError("the file is empty (0 bytes)")
    if max_bytes is not None and size > max_bytes:
        raise DetectorInputError(f"the file is {_size(size)}; the limit is {_size(max_bytes)} per file")


def _open(item: ImageInput, max_bytes: int | None = None) -> Image.Image:
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, (bytes, bytearray)):
        _check_bytes(len(item), max_bytes)
        return Image.open(io.BytesIO(bytes(item)), formats=ALLOWED_FORMATS)
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        if not path.exists():
            raise DetectorInputError("file not found")
        if path.is_dir():
            raise DetectorInputError("this is a folder, not an image file")
        _check_bytes(path.stat().st_size, max_bytes)  # before reading it
        return Image.open(io.BytesIO(path.read_bytes()), formats=ALLOWED_FORMATS)  # no handle left open
    raise DetectorInputError(f"unsupported input type {type(item).__name__}; pass a path, bytes or a PIL image")


def _looks_like_svg(item: ImageInput) -> bool:
    """Whether an unreadable input is an SVG (its name, or an <svg tag near its start)."""
    if isinstance(item, (str, os.PathLike)):
        if str(item).lower().endswith((".svg", ".svgz")):
            return True
        try:
            with open(item, "rb") as fh:
                head = fh.read(2048)
        except OSError:
            return False
    elif isinstance(item, (bytes, bytearray)):
        head = bytes(item[:2048])
    else:
        return False
    return b"<svg" in head.lower()


def _size(n_bytes: int) -> str:
    """A byte count as people read it: "20 MB", "1.5 MB", "800 bytes"."""
    if n_bytes < 1e6:
        return f"{n_bytes:,} bytes" if n_bytes < 1e3 else f"{n_bytes / 1e3:.3g} kB"
    return f"{n_bytes / 1e6:.3g} MB"


def load_image(item: ImageInput, source: str | None = None, max_bytes: int | None = None) -> LoadedImage:
    """Decode one input fully (so truncation surfaces here) and normalise it to RGB. Files (or bytes)
    over ``max_bytes`` are refused before they are read."""
    name = source or _source_name(item)
    try:
        with warnings.catch_warnings():  # the size is checked below, with a clearer message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = _open(item, max_bytes)
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise DetectorInputError(
                f"the image is too large ({width}×{height} = {width * height:,} pixels; the limit is "
                f"{MAX_PIXELS:,} pixels, {MAX_PIXELS / 1e6:g} MP)"
            )
        if width < 1 or height < 1:
            raise DetectorInputError("the image has no pixels")
        if max(width, height) > MAX_ASPECT * min(width, height):
            raise DetectorInputError(f"the image is too elongated ({width}×{height}; at most {MAX_ASPECT}:1)")
        fmt, mode = image.format, image.mode
        frames = int(getattr(image, "n_frames", 1) or 1)
        if getattr(image, "is_animated", False):
            image.seek(0)  # animated GIF/WebP/APNG: the first frame
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb = _to_rgb(image)
            rgb.load()
    except DetectorInputError:
        raise
    except UnidentifiedImageError:
        if _looks_like_svg(item):
            raise DetectorInputError("an SVG is a vector drawing, not pixels: export it as PNG to check it (drawings "
                                     "are outside what the detector was trained on)") from None
        raise DetectorInputError("not an image, or an image format this tool cannot read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DetectorInputError(f"the image is too large (the limit is {MAX_PIXELS:,} pixels, {MAX_PIXELS / 1e6:g} MP)") from None
    except OSError as exc:
        text = str(exc)
        if "truncated" in text or "broken data stream" in text or "image file is" in text:
            raise DetectorInputError("the image file is truncated or damaged") from None
        raise DetectorInputError(f"the image could not be decoded ({text})") from None
    except (ValueError, SyntaxError, EOFError) as exc:  # Pillow raises these for malformed headers
        raise DetectorInputError(f"the image could not be decoded ({exc})") from None
    return LoadedImage(rgb, name, (width, height), fmt, mode, frames)


def to_signed(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0…255) → float32 in [−1, 1] (x / 255 · 2 − 1): the one conversion into model space."""
    return TF.to_dtype(pixels, torch.float32, scale=True) * 2.0 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [−1, 1] → uint8 pixels (clamped, rounded): the one conversion out of model space."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def to_model_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """RGB PIL image → 3×size×size float32 in [−1, 1] (official DistilDIRE geometry)."""
    tensor = to_signed(TF.pil_to_tensor(image))
    tensor = TF.resize(tensor, [size], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    return TF.center_crop(tensor, [size, size])
