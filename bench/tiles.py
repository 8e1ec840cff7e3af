"""Throughput of the bundled (tiled) models through ``Detector.detect``: images per second, one image at
a time and in batches, and the cost per tile, for DistilDIRE ([image, ε], one UNet call per tile) and
the image-only tier (no UNet). Images are generated in memory at several sizes (decoding included).
Not a test: run it and read the figures.

    python -m bench.tiles [--repeats 3] [--batch 8]
"""

from __future__ import annotations

import argparse
import io
import platform

import numpy as np
import torch
from PIL import Image

from detector import Detector
from detector.costs import median_ms


def _jpeg(width: int, height: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8)
    image = Image.fromarray(pixels).resize((width, height), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _median_s(fn, repeats: int) -> float:
    return median_ms(fn, repeats, sync=torch.cuda.synchronize if torch.cuda.is_available() else None) / 1e3


def _load(weights: str, variant: str) -> Detector:
    if weights == "bundled":
        return Detector.from_pretrained("bundled" if variant == "distildire" else "bundled-fast")
    return Detector.from_pretrained(weights, variant=variant)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--weights", default="bundled", help="'bundled' or a weights folder")
    args = parser.parse_args()
    hardware = torch.cuda.get_device_name() if torch.cuda.is_available() else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}; {hardware}")
    sizes = [(256, 256), (512, 512), (1024, 1024), (4000, 3000)]
    for variant in ("distildire", "image-only"):
        detector = _load(args.weights, variant)
        print(f"\n{variant}: {detector.describe()['preprocessing']}")
        print(f"{'image':>10} {'tiles':>6} {'1 image (ms)':>13} {'img/s':>7} {'batch of ' + str(args.batch) + ' (img/s)':>20} {'ms/tile':>8}")
        for width, height in sizes:
            one = _jpeg(width, height, 0)
            batch = [_jpeg(width, height, s) for s in range(args.batch)]
            tiles = len(detector.detect_one(one).grid.boxes)
            single = _median_s(lambda d=detector, one=one: d.detect_one(one), args.repeats)
            many = _median_s(lambda d=detector, batch=batch: d.detect(batch, batch_size=args.batch), args.repeats)
            print(f"{width}x{height:<5} {tiles:>6} {single * 1e3:>13.1f} {1 / single:>7.2f} {args.batch / many:>20.2f} "
                  f"{many / (args.batch * tiles) * 1e3:>8.2f}")


if __name__ == "__main__":
    main()
