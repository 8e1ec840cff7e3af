"""Stage 3 — crops and tiles, with ε, cached once for every classifier and fold:

* training crops: per image a few random processing histories (``detector.perturb.AugmentChain``:
  class-specific counter-shortcut steps, then the same rescale/JPEG chain for both classes), each
  followed by random native-resolution crops of ``tile`` px — never a whole-image downscale;
* evaluation tiles: per image and condition (clean, JPEG, rescale, blur, …), exactly the tiles the
  ``Detector`` scores at inference (``detector.tiling``), so image-level metrics of any fold model
  are computed without re-running the UNet.

ε comes from ``detector.EpsExtractor`` (the served code path) and is stored as float16 next to the
uint8 pixels.

    python -m train.crops --config train/configs/bundled.json
    python -m train.crops --config train/configs/ablation-kd.json --conditions clean   # + DIRE maps (kd_weight > 0)

The DIRE-teacher ablation (fold 0) then trains ``--variant teacher --fold 0`` and ``--variant student --fold 0``
with ``python -m train.classifiers --config train/configs/ablation-kd.json``; compare the students' held-out AUC.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import statistics
from collections import Counter
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from detector.perturb import AugmentChain, apply
from detector.preprocess import load_image
from detector.tiling import image_to_tiles

from .common import eps_extractor, set_threads, to_uint8, to_unit
from .config import RecipeConfig, config_parser, load_config
from .corpus import Record, corpus_records


def record_image(record: Record, trim: bool = True) -> Image.Image:
    """The record's pixels as RGB (metadata dropped), minus a known signature strip when ``trim``."""
    image = load_image(record.path).image
    if trim and record.trim_bottom and image.height > record.trim_bottom + 64:
        image = image.crop((0, 0, image.width, image.height - record.trim_bottom))
    return image


def draws_per_record(records: list[Record], draws: int, balance: float) -> list[int]:
    """Augmentation draws per image: small groups get more, large groups fewer (clipped to ½…3×)."""
    sizes = Counter((r.label, r.group) for r in records)
    median = statistics.median(sizes.values())
    out = []
    for r in records:
        factor = min(3.0, max(0.5, (median / sizes[(r.label, r.group)]) ** balance))
        out.append(max(1, round(draws * factor)))
    return out


def _seed(*parts) -> int:
    return int(hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _random_crops(image: Image.Image, count: int, tile: int, rng: random.Random) -> list[np.ndarray]:
    if min(image.size) < tile:  # as at inference: enlarge what is smaller than one tile
        scale = tile / min(image.size)
        image = image.resize((max(tile, round(image.width * scale)), max(tile, round(image.height * scale))), Image.BILINEAR)
    pixels = np.asarray(image)
    crops = []
    for _ in range(count):
        top, left = rng.randint(0, image.height - tile), rng.randint(0, image.width - tile)
        crops.append(pixels[top : top + tile, left : left + tile].transpose(2, 0, 1).copy())
    return crops


def _worker_init() -> None:
    torch.set_num_threads(1)  # the pool's processes share the cores


def _record_crops(job: tuple) -> tuple[int, list[np.ndarray], list[str]]:
    """All training crops of one record (runs in a worker process)."""
    index, record, n_draws, cfg_crops, chain_fields, seed = job
    chain = AugmentChain(**chain_fields)
    image = record_image(record)
    crops, ops = [], []
    for draw in range(n_draws):
        rng = random.Random(_seed(seed, record.path, draw))
        w, h = min(image.width, cfg_crops["window"]), min(image.height, cfg_crops["window"])
        left, top = rng.randint(0, image.width - w), rng.randint(0, image.height - h)
        window = image.crop((left, top, left + w, top + h))
        augmented, steps = chain(window, record.label, rng)
        for crop in _random_crops(augmented, cfg_crops["crops_per_draw"], cfg_crops["tile"], rng):
            crops.append(crop)
            ops.append("+".join(steps) or "none")
    return index, crops, ops


def _with_eps(pixels: torch.Tensor, extractor, batch_size: int, desc: str) -> torch.Tensor:
    """ε (float16) for uint8 N×3×s×s pixels, in batches."""
    out = torch.empty(pixels.shape, dtype=torch.float16)
    for start in tqdm(range(0, len(pixels), batch_size), desc=desc, unit="batch", disable=None):
        x = to_unit(pixels[start : start + batch_size])
        out[start : start + batch_size] = extractor(x).cpu().half()
    return out


def reuse_pixels(cfg: RecipeConfig, source: Path, meta: Path, target: Path, target_meta: Path, log=print) -> int:
    """``crops.pixels_from``: copy another work directory's cache with ε recomputed by this recipe's ε-network.
    Its corpus table must be this recipe's (same images, order, labels and folds), else the pixels are wrong."""
    corpus_records(cfg)  # this recipe's table, written on first use
    if json.loads(cfg.pixel_source.records.read_text()) != json.loads(cfg.work.records.read_text()):
        raise ValueError(f"crops.pixels_from: {cfg.pixel_source.root} was built from another corpus table")
    if not source.is_file():
        raise FileNotFoundError(f"crops.pixels_from: {source} is missing; run that recipe's crops stage first")
    tensors = load_file(str(source))
    tensors["eps"] = _with_eps(tensors["pixels"], eps_extractor(cfg), cfg.crops.batch_size, f"eps {target.stem}")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(target))
    shutil.copyfile(meta, target_meta)
    log(f"{target.stem}: pixels of {source}, ε of this recipe's ε-network ({len(tensors['pixels'])} inputs)")
    return len(tensors["pixels"])


def build_training_crops(cfg: RecipeConfig, log=print) -> int:
    """Write ``crops/train.safetensors`` (pixels, eps, record, label) and ``crops/train.json``."""
    work = cfg.work
    if work.crops.is_file():
        log(f"training crops already at {work.crops}")
        return len(load_file(str(work.crops))["label"])
    set_threads(cfg.threads)
    if cfg.pixel_source:
        return reuse_pixels(cfg, cfg.pixel_source.crops, cfg.pixel_source.crops_meta, work.crops, work.crops_meta, log)
    records = corpus_records(cfg)
    c = cfg.crops
    draws = draws_per_record(records, c.draws, c.group_balance)
    jobs = [(i, r, draws[i], {"window": c.window, "crops_per_draw": c.crops_per_draw, "tile": c.tile}, c.augment, c.seed)
            for i, r in enumerate(records)]
    pixels, owners, ops = [], [], []
    with get_context("forkserver").Pool(max(1, torch.get_num_threads()), _worker_init) as pool:
        for index, crops, steps in tqdm(pool.imap(_record_crops, jobs, chunksize=4), total=len(jobs), desc="crops", disable=None):
            pixels += crops
            owners += [index] * len(crops)
            ops += steps
    pixels_t = torch.from_numpy(np.stack(pixels))
    labels = torch.tensor([records[i].label for i in owners], dtype=torch.int8)
    log(f"{len(pixels_t)} training crops ({int(labels.sum())} generated, {int((labels == 0).sum())} photos)")
    eps = _with_eps(pixels_t, eps_extractor(cfg), c.batch_size, "eps train")
    work.crops.parent.mkdir(parents=True, exist_ok=True)
    save_file({"pixels": pixels_t, "eps": eps, "record": torch.tensor(owners, dtype=torch.int32), "label": labels},
              str(work.crops))
    work.crops_meta.write_text(json.dumps({"ops": ops, "draws": draws, "counts": dict(Counter(ops).most_common(40))}))
    return len(pixels_t)


def condition_records(records: list[Record], applies_to: str) -> list[int]:
    wanted = {"both": (0, 1), "reals": (0,), "fakes": (1,)}[applies_to]
    return [i for i, r in enumerate(records) if r.label in wanted]


def _record_tiles(job: tuple) -> tuple[int, np.ndarray, list[int]]:
    index, record, condition, tile, max_tiles = job
    image = apply(record_image(record, trim=False), condition)  # evaluated as published, signature and all
    tiles, grid = image_to_tiles(image, tile, max_tiles)
    pixels = to_uint8(tiles).numpy()
    return index, pixels, [grid.rows, grid.cols]


def build_eval_tiles(cfg: RecipeConfig, condition: str, log=print, max_tiles: int | None = None,
                     only: list[int] | None = None, cache: str | None = None) -> int:
    """Write ``tiles/{condition}.safetensors``: every applicable image's inference tiles and their ε
    (a lever study may ask for another ``max_tiles``, a subset of records and its own ``cache`` name)."""
    work = cfg.work
    target = work.tiles(cache or condition)
    if target.is_file():
        return len(load_file(str(target))["record"])
    set_threads(cfg.threads)
    name = cache or condition
    if cfg.pixel_source:
        return reuse_pixels(cfg, cfg.pixel_source.tiles(name), cfg.pixel_source.tiles_meta(name), target,
                            work.tiles_meta(name), log)
    records = corpus_records(cfg)
    chosen = condition_records(records, cfg.eval.conditions.get(condition, "both"))
    chosen = [i for i in chosen if only is None or i in set(only)]
    jobs = [(i, records[i], condition, cfg.crops.tile, max_tiles or cfg.eval.max_tiles) for i in chosen]
    pixels, owners, tile_index, grids = [], [], [], {}
    with get_context("forkserver").Pool(max(1, torch.get_num_threads()), _worker_init) as pool:
        for index, tiles, shape in tqdm(pool.imap(_record_tiles, jobs, chunksize=4), total=len(jobs), desc=f"tiles {condition}", disable=None):
            pixels.append(tiles)
            owners += [index] * len(tiles)
            tile_index += list(range(len(tiles)))
            grids[index] = shape
    pixels_t = torch.from_numpy(np.concatenate(pixels))
    eps = _with_eps(pixels_t, eps_extractor(cfg), cfg.crops.batch_size, f"eps {condition}")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file({"pixels": pixels_t, "eps": eps, "record": torch.tensor(owners, dtype=torch.int32),
               "tile": torch.tensor(tile_index, dtype=torch.int16)}, str(target))
    work.tiles_meta(cache or condition).write_text(json.dumps({"grids": grids}))
    log(f"{cache or condition}: {len(pixels_t)} tiles of {len(chosen)} images")
    return len(pixels_t)


def load_tiles(cfg: RecipeConfig, condition: str) -> dict[str, torch.Tensor]:
    return load_file(str(cfg.work.tiles(condition)))


def build_dire_maps(cfg: RecipeConfig, log=print) -> int:
    """Write ``crops/dire.safetensors``: DIRE maps (uint8, ⌊127.5·|x − reconstruct(invert(x))|⌋,
    DDIM-``dire_steps`` each way, float32) for a seeded ``dire_fraction`` of the training crops."""
    from detector.ddim import DDIM, dire_to_uint8

    work = cfg.work
    if work.crops_dire.is_file():
        return int(load_file(str(work.crops_dire))["has_dire"].sum())
    set_threads(cfg.threads)
    pixels = load_file(str(work.crops))["pixels"]
    chosen = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(cfg.crops.seed))
    chosen = chosen[: round(cfg.crops.dire_fraction * len(pixels))].sort().values
    extractor = eps_extractor(cfg, "diffusion")
    ddim = DDIM(extractor.ddim.schedule, cfg.crops.dire_steps)
    dire = torch.zeros(pixels.shape, dtype=torch.uint8)
    with torch.inference_mode():
        for start in tqdm(range(0, len(chosen), 16), desc="DIRE", disable=None):
            rows = chosen[start : start + 16]
            x = to_unit(pixels[rows])
            dire[rows] = dire_to_uint8(x, ddim.reconstruct(extractor.eps_fn, ddim.invert(extractor.eps_fn, x)))
    has_dire = torch.zeros(len(pixels), dtype=torch.bool)
    has_dire[chosen] = True
    save_file({"dire": dire, "has_dire": has_dire}, str(work.crops_dire))
    log(f"DIRE maps (DDIM-{cfg.crops.dire_steps}) for {len(chosen)} of {len(pixels)} training crops")
    return len(chosen)


def load_crops(cfg: RecipeConfig, with_dire: bool = False) -> dict[str, torch.Tensor]:
    """The training crops (pixels, eps, record, label), plus ``dire``/``has_dire`` when asked."""
    crops = load_file(str(cfg.work.crops))
    if with_dire:
        crops.update(load_file(str(cfg.work.crops_dire)))
    return crops


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--conditions", nargs="*", help="evaluation conditions to cache (default: all configured)")
    parser.add_argument("--skip-train", action="store_true", help="only the evaluation tiles")
    args = parser.parse_args()
    cfg = load_config(args.config)
    log = lambda m: print(m, flush=True)
    if not args.skip_train:
        build_training_crops(cfg, log)
        if cfg.classifier.kd_weight > 0:  # the DIRE teacher's inputs
            build_dire_maps(cfg, log)
    for condition in args.conditions if args.conditions is not None else cfg.eval.conditions:
        build_eval_tiles(cfg, condition, log)


if __name__ == "__main__":
    main()
