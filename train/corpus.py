"""Stage 1 — corpus: every labelled image as one record with its SOURCE and a leave-source-out fold.

Sources are what validation must generalise across: the generator FAMILY for a fake (SD 1.x and its
LoRA/LCM variants are one family, FLUX and its derivatives another, …) and the photo SOURCE for a real
(ImageNet, BSD100, camera EXIF samples, …; sources larger than ``max_source_size`` are split into
chunks by file-name hash). Each group lands in exactly one of ``folds`` folds, balanced by image count
per class, so a fold's validation images come from generators and photo sets its model never saw.

Inputs, all read as pixels only (metadata never reaches a model):

* manifests: CSV with ``file,label[,generator][,source][,licence][,repo]`` (``public_corpus`` style;
  a ``notes.csv`` beside it with ``source_group`` names the photo sources);
* photo_dirs: folders of photos, each one source (a ``manifest.csv`` with ``license`` is read if present);
* image_dirs: user data laid out as ``DIR/{reals,fakes}/<source or generator>/*``.

    python -m train.corpus --config train/configs/bundled.json
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import CorpusConfig, RecipeConfig, config_parser, load_config

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass
class Record:
    path: str
    label: int  # 1 = generated, 0 = photo
    generator: str  # the generator's name for fakes, "camera" for photos
    group: str  # fold unit: generator family (fakes) or photo source / source chunk (reals)
    source: str  # family (fakes) or photo source before chunking (reals)
    licence: str = ""
    repo: str = ""
    fold: int = -1
    trim_bottom: int = 0  # rows removed before use (a visible generator signature)
    origin: str = ""  # where the file comes from: repository@commit:path, or the photo folder's package

    @property
    def name(self) -> str:
        return Path(self.path).name


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _from_manifest(manifest: Path, cfg: CorpusConfig) -> list[Record]:
    root = manifest.parent
    notes_path = root / "notes.csv"
    notes = {r["file"]: r for r in _read_csv(notes_path)} if notes_path.is_file() else {}
    records = []
    for row in _read_csv(manifest):
        label = 1 if row["label"].strip().lower() in ("fake", "1", "generated") else 0
        generator = row.get("generator") or ("unknown" if label else "camera")
        if label:
            source = cfg.families.get(generator, generator)
        else:
            source = row.get("source") or notes.get(row["file"], {}).get("source_group") or row.get("repo") or manifest.parent.name
        origin = f"{row['repo']}@{row.get('commit', '')[:12]}:{row.get('path', '')}" if row.get("repo") else ""
        records.append(Record(str(root / row["file"]), label, generator, source, source, row.get("licence", row.get("license", "")),
                              row.get("repo", ""), trim_bottom=int(cfg.trim_bottom.get(generator, 0)), origin=origin))
    return records


def _from_photo_dir(folder: Path) -> list[Record]:
    rows = {r["file"]: r for r in _read_csv(folder / "manifest.csv")} if (folder / "manifest.csv").is_file() else {}
    return [Record(str(p), 0, "camera", folder.name, folder.name,
                   rows.get(p.name, {}).get("license", rows.get(p.name, {}).get("licence", "")),
                   origin=f"{folder.name}/{p.name}" + (f" ({rows[p.name]['source_package']})" if rows.get(p.name, {}).get("source_package") else ""))
            for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]


def _from_image_dir(root: Path, cfg: CorpusConfig) -> list[Record]:
    records = []
    for label, kind in ((0, "reals"), (1, "fakes")):
        for path in sorted((root / kind).rglob("*")):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            name = path.parent.name if path.parent != root / kind else root.name
            generator = name if label else "camera"
            source = cfg.families.get(name, name) if label else name
            records.append(Record(str(path), label, generator, source, source,
                                  trim_bottom=int(cfg.trim_bottom.get(generator, 0))))
    return records


def _chunk_large_sources(records: list[Record], max_size: int) -> None:
    """Split photo sources above ``max_size`` into equal chunks ``source/k``, by file-name hash."""
    by_source = defaultdict(list)
    for r in records:
        if r.label == 0:
            by_source[r.source].append(r)
    for source, members in by_source.items():
        if len(members) <= max_size:
            continue
        chunks = -(-len(members) // max_size)
        ordered = sorted(members, key=lambda r: hashlib.sha256(r.name.encode()).hexdigest())
        for i, r in enumerate(ordered):
            r.group = f"{source}/{i * chunks // len(ordered)}"


def assign_folds(records: list[Record], folds: int, seed: int) -> None:
    """Each group to one fold, per class: largest groups first, each to the fold with the fewest images."""
    rng = random.Random(seed)
    for label in (0, 1):
        sizes = Counter(r.group for r in records if r.label == label)
        groups = sorted(sizes)
        rng.shuffle(groups)  # seeded tie-break among equal sizes
        groups.sort(key=lambda g: -sizes[g])
        load = [0] * folds
        fold_of = {}
        for g in groups:
            k = min(range(folds), key=lambda i: (load[i], i))
            fold_of[g] = k
            load[k] += sizes[g]
        for r in records:
            if r.label == label:
                r.fold = fold_of[r.group]


def build_records(cfg: CorpusConfig) -> list[Record]:
    """All records of the configured inputs, with groups and folds (deterministic)."""
    records: list[Record] = []
    for manifest in cfg.manifests:
        records += _from_manifest(Path(manifest), cfg)
    for folder in cfg.photo_dirs:
        records += _from_photo_dir(Path(folder))
    for folder in cfg.image_dirs:
        records += _from_image_dir(Path(folder), cfg)
    if not records:
        raise ValueError("the corpus is empty: check corpus.manifests / photo_dirs / image_dirs")
    labels = {r.label for r in records}
    if labels != {0, 1}:
        raise ValueError("the corpus needs both photos and generated images")
    _chunk_large_sources(records, cfg.max_source_size)
    assign_folds(records, cfg.folds, cfg.seed)
    return records


def summary(records: list[Record]) -> dict:
    """Per fold: images per class and the groups it holds out."""
    out = {}
    for k in sorted({r.fold for r in records}):
        members = [r for r in records if r.fold == k]
        out[k] = {
            "fakes": sum(r.label for r in members),
            "reals": sum(1 - r.label for r in members),
            "families": sorted({r.group for r in members if r.label == 1}),
            "photo_sources": sorted({r.group for r in members if r.label == 0}),
        }
    return out


def save_records(records: list[Record], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(r) for r in records], indent=1))


def load_records(path: Path) -> list[Record]:
    return [Record(**r) for r in json.loads(Path(path).read_text())]


def corpus_records(cfg: RecipeConfig) -> list[Record]:
    """The records of the work directory, built (and saved) on first use."""
    path = cfg.work.records
    if path.is_file():
        return load_records(path)
    records = build_records(cfg.corpus)
    save_records(records, path)
    return records


def main() -> None:
    args = config_parser(__doc__).parse_args()
    records = corpus_records(load_config(args.config))
    for k, fold in summary(records).items():
        print(f"fold {k}: {fold['fakes']} fakes from {', '.join(fold['families'])}")
        print(f"        {fold['reals']} photos from {', '.join(fold['photo_sources'])}")


if __name__ == "__main__":
    main()
