"""Whatever users upload decodes to RGB or fails with a sentence; geometry is the official one."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import encode, make_photo
from PIL import Image

from detector import DetectorInputError, load_image, to_model_tensor
from detector.preprocess import MAX_PIXELS


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise when displayed
    loaded = load_image(encode(image, "JPEG", quality=95, exif=exif))
    assert loaded.image.size == (20, 40)
    top = np.asarray(loaded.image)[2, 10]
    assert top[2] > 200 and top[0] < 60  # the blue half is on top after rotation


def test_rgba_is_composited_over_white():
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    image.putpixel((0, 0), (10, 20, 30, 255))
    rgb = np.asarray(load_image(encode(image)).image)
    assert rgb[0, 0].tolist() == [10, 20, 30]
    assert rgb[4, 4].tolist() == [255, 255, 255]


@pytest.mark.parametrize("mode", ["L", "LA", "P", "CMYK", "1"])
def test_common_modes_become_rgb(mode):
    image = make_photo(32, 24).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    loaded = load_image(encode(image, fmt))
    assert loaded.image.mode == "RGB" and loaded.image.size == (32, 24)
    assert loaded.original_mode == mode


def test_palette_transparency():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    image.putpixel((1, 1), 1)
    image.info["transparency"] = 0
    rgb = np.asarray(load_image(encode(image, "PNG", transparency=0)).image)
    assert rgb[0, 0].tolist() == [255, 255, 255] and rgb[1, 1].tolist() == [200, 10, 10]


def test_16_bit_grayscale_keeps_its_range():
    values = np.array([[0, 16384, 32768, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    assert image.mode.startswith("I;16")
    rgb = np.asarray(load_image(encode(image)).image)[0, :, 0]
    assert rgb.tolist() == pytest.approx([0, 64, 128, 255], abs=1)


def test_animated_image_uses_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in [(250, 0, 0), (0, 250, 0), (0, 0, 250)]]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    pixel = np.asarray(load_image(buffer.getvalue()).image)[8, 8]
    assert pixel[0] > 200 and pixel[1] < 50


def test_pixel_limit_refuses_before_decoding():
    huge = Image.new("1", (9000, 8000))  # 72 MP, a few kB as PNG
    data = encode(huge)
    assert 9000 * 8000 > MAX_PIXELS
    with pytest.raises(DetectorInputError, match="too large") as info:
        load_image(data)
    assert "72,000,000 pixels; the limit is 64,000,000" in str(info.value)  # exact, not two rounded "64 MP"


def test_file_size_limit_refuses_one_file_unread(tmp_path):
    path = tmp_path / "big.png"
    path.write_bytes(encode(make_photo(seed=1)) + b"\0" * 3_000_000)
    with pytest.raises(DetectorInputError, match=r"3\.\d+ MB; the limit is 2 MB per file"):
        load_image(path, max_bytes=2_000_000)
    with pytest.raises(DetectorInputError, match="limit is 2 MB"):
        load_image(path.read_bytes(), max_bytes=2_000_000)
    assert load_image(path).image.size == make_photo(seed=1).size  # no limit by default


@pytest.mark.parametrize(
    "payload,message",
    [
        (b"", "empty"),
        (b"hello, this is text", "not an image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "SVG is a vector drawing"),
        (b"%PDF-1.4\n%%EOF", "not an image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),  # no Ghostscript
    ],
)
def test_unreadable_bytes(payload, message):
    with pytest.raises(DetectorInputError, match=message):
        load_image(payload)


def test_extreme_aspect_ratio_is_refused():
    with pytest.raises(DetectorInputError, match="elongated"):
        load_image(encode(Image.new("RGB", (2000, 10))))


def test_truncated_file(tmp_path):
    data = encode(make_photo(seed=5), "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DetectorInputError, match="truncated or damaged"):
        load_image(path)


def test_paths_that_are_not_images(tmp_path):
    with pytest.raises(DetectorInputError, match="not found"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(DetectorInputError, match="folder"):
        load_image(tmp_path)
    with pytest.raises(DetectorInputError, match="unsupported input type"):
        load_image(12345)  # type: ignore[arg-type]


def test_geometry_resizes_shorter_side_and_center_crops():
    """A 3:1 image whose centre third is green: after resize + centre crop only green remains."""
    pixels = np.zeros((40, 120, 3), np.uint8)
    pixels[:, :40] = (255, 0, 0)
    pixels[:, 40:80] = (0, 255, 0)
    pixels[:, 80:] = (0, 0, 255)
    tensor = to_model_tensor(Image.fromarray(pixels), 32)
    assert tensor.shape == (3, 32, 32) and tensor.dtype == torch.float32
    assert tensor[1, :, 2:-2].min() > 0.9 and tensor[0, :, 2:-2].max() < -0.9  # green centre, red dropped
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0


def test_geometry_value_mapping():
    gray = Image.new("RGB", (10, 10), (0, 0, 0))
    assert torch.all(to_model_tensor(gray, 10) == -1.0)
    white = Image.new("RGB", (10, 10), (255, 255, 255))
    assert torch.all(to_model_tensor(white, 10) == 1.0)
