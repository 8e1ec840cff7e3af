"""Stage 1 — data: real photos → fixed-size patches, split by source photo (no photo in two splits).

Each patch is a random square window (side log-uniform between ``min_window`` and the photo's shorter
side, so scales range from 1:1 crops to whole-photo downscales) resized with the detector's own
geometry (bilinear, antialiased) and stored as PNG. Deterministic from the seed.

    python -m train.data --config train/configs/bundled.json

Also reads user datasets in the standard layout ``root/{train,val,test}/{reals,fakes}/*``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from detector.preprocess import load_image, to_model_tensor

from .config import RecipeConfig, config_parser, load_config

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # 1 = fake, 0 = real
    kind: str  # "real", "sample", "regen", or the fakes subfolder's name
    split: str


def split_photos(photos: list[Path], val: int, test: int, seed: int) -> dict[str, list[Path]]:
    """Shuffle (seeded) and cut into train/val/test by photo."""
    order = sorted(photos, key=lambda p: p.name)
    random.Random(seed).shuffle(order)
    if val + test >= len(order):
        raise ValueError(f"{len(order)} photos cannot give {val} val and {test} test photos and a train split")
    return {"test": sorted(order[:test]), "val": sorted(order[test : test + val]), "train": sorted(order[test + val :])}


def random_patches(image: Image.Image, count: int, size: int, min_window: int, rng: random.Random) -> list[np.ndarray]:
    """``count`` random-scale square crops of an RGB image, each resized to ``size``×``size`` uint8."""
    width, height = image.size
    short = min(width, height)
    low = min(min_window, short)
    patches = []
    for _ in range(count):
        window = int(round(math.exp(rng.uniform(math.log(low), math.log(short)))))
        left, top = rng.randint(0, width - window), rng.randint(0, height - window)
        crop = image.crop((left, top, left + window, top + window))
        tensor = to_model_tensor(crop, size)
        patches.append(((tensor + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy())
    return patches


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_patches(cfg: RecipeConfig) -> dict:
    """Write ``workdir/data/{split}/reals/*.png`` and ``workdir/data/manifest.json``; returns the manifest."""
    data = cfg.data
    root = Path(cfg.workdir) / "data"
    photos = sorted(p for p in Path(data.photos).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    splits = split_photos(photos, data.val_photos, data.test_photos, data.seed)
    rng = random.Random(data.seed)
    manifest = {"config": data.__dict__, "splits": {}, "photos": {}}
    for split in SPLITS:
        out = root / split / "reals"
        out.mkdir(parents=True, exist_ok=True)
        manifest["splits"][split] = [p.name for p in splits[split]]
        for photo in splits[split]:
            manifest["photos"][photo.name] = sha256_file(photo)
            image = load_image(photo).image
            for i, patch in enumerate(random_patches(image, data.patches_per_photo[split], data.patch_size,
                                                     data.min_window, rng)):
                Image.fromarray(patch).save(out / f"{photo.stem}_{i:04d}.png")
    manifest["hash"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def list_samples(root: str | Path, split: str) -> list[Sample]:
    """Images of one split in the standard layout ``root/split/{reals,fakes}/...``. Fakes may sit in
    subfolders (their name becomes the kind) or carry a ``kind_`` file-name prefix."""
    base = Path(root) / split
    samples = [Sample(p, 0, "real", split) for p in sorted((base / "reals").rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    for path in sorted((base / "fakes").rglob("*")):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        parent = path.parent.name
        kind = parent if parent != "fakes" else path.stem.split("_", 1)[0]
        samples.append(Sample(path, 1, kind, split))
    return samples


def main() -> None:
    parser = config_parser(__doc__)
    args = parser.parse_args()
    manifest = build_patches(load_config(args.config))
    counts = {s: len(v) for s, v in manifest["splits"].items()}
    print(f"patches written; photos per split {counts}; manifest hash {manifest['hash']}")


if __name__ == "__main__":
    main()
