"""Stage 4 — the classifiers, one training loop for every variant and fold:

| variant      | input        | loss                                                                      |
| ------------ | ------------ | ------------------------------------------------------------------------- |
| ``teacher``  | DIRE map     | BCE (only when ``kd_weight`` > 0: DIRE maps cost 2 × ``dire_steps`` calls) |
| ``student``  | [image, ε]   | BCE + λ·MSE(layer4, the fold's teacher's layer4 on the crop's DIRE map)    |
| ``image-only`` | image      | BCE + μ·BCE(logit, the fold's student's p(fake)) (``logit_kd_weight``)     |
| ``eps-only`` | ε            | BCE — an ablation (does the image channel matter?), never shipped          |

λ = ``kd_weight`` (0: the student is trained with BCE alone), μ = ``logit_kd_weight``. A term is used
only when its teacher's model for the same fold exists.

Trained on the cached training crops of every record outside the held-out fold (``--fold k``), or of
all records (``--fold all``: the shipped model). No epoch is picked on held-out data: a fixed number
of epochs with a one-cycle learning rate, the last weights kept. After training, the held-out fold's
inference tiles are scored under every cached condition and the raw tile logits are saved beside the
weights, for the out-of-fold evaluation (``train.evaluate``).

    python -m train.classifiers --config train/configs/bundled.json --variant student --fold 0
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

import torch
from safetensors.torch import load_file, save_file
from sklearn.metrics import roc_auc_score
from torch.nn import functional as F

from detector.models import DistilDIREStudent
from detector.models.student import INPUT_KINDS, classifier_input
from detector.tiling import aggregate

from .common import seed_everything, set_threads, to_unit, write_json
from .config import RecipeConfig, config_parser, load_config
from .corpus import corpus_records
from .crops import load_crops, load_tiles


@dataclass(frozen=True)
class Variant:
    inputs: str  # "image+eps" | "image" | "eps" | "dire"
    teacher: str | None = None  # the variant whose same-fold model gives the distillation targets
    kd: str | None = None  # "feature": MSE on layer4 (weight kd_weight); "logit": BCE on p (logit_kd_weight)


VARIANTS = {
    "teacher": Variant("dire"),
    "student": Variant("image+eps", teacher="teacher", kd="feature"),
    "image-only": Variant("image", teacher="student", kd="logit"),
    "eps-only": Variant("eps"),
}
IN_CHANNELS = INPUT_KINDS  # input kind → channels, as the detector defines them


def model_input(inputs: str, tensors: dict[str, torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
    """Cached uint8 pixels (+ float16 ε, uint8 DIRE) → the classifier's float32 input, assembled as
    ``Detector`` assembles it (``detector.models.student.classifier_input``)."""
    if inputs == "dire":
        return classifier_input("dire", dire=to_unit(tensors["dire"][rows]))
    image = to_unit(tensors["pixels"][rows]) if inputs != "eps" else None
    eps = tensors["eps"][rows].float() if inputs != "image" else None
    return classifier_input(inputs, image, eps)


def load_classifier(cfg: RecipeConfig, variant: str, fold: int | None) -> DistilDIREStudent:
    model = DistilDIREStudent(cfg.classifier.depth, IN_CHANNELS[VARIANTS[variant].inputs])
    model.load_state_dict(load_file(str(cfg.work.classifier(variant, fold))))
    return model.eval()


@torch.inference_mode()
def raw_logits(model, inputs: str, tensors: dict[str, torch.Tensor], index: torch.Tensor | None = None,
               batch_size: int = 256) -> torch.Tensor:
    """The model's raw logits on cached tensors (all rows, or ``index``), on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    rows = torch.arange(len(tensors["pixels"])) if index is None else index
    out = []
    for start in range(0, len(rows), batch_size):
        x = model_input(inputs, tensors, rows[start : start + batch_size]).to(device)
        out.append(model(x)["logit"].float().squeeze(1).cpu())
    return torch.cat(out) if out else torch.empty(0)


def held_out_auc(model, inputs: str, tensors: dict[str, torch.Tensor], labels: dict[int, int], held: set[int],
                 per_image: bool = True) -> float | None:
    """ROC-AUC on the held-out fold (diagnostic only; never used to select anything): image-level
    over inference tiles (``per_image``), or crop-level (for the teacher, whose DIRE exists for crops only)."""
    index = torch.tensor([i for i, r in enumerate(tensors["record"].tolist()) if r in held], dtype=torch.long)
    if "dire" in tensors:
        index = index[tensors["has_dire"][index]]
    if len(index) == 0:
        return None
    logits, owners = raw_logits(model, inputs, tensors, index), tensors["record"][index]
    if per_image:
        scores = {r: aggregate(logits[owners == r], "mean_logit") for r in owners.unique().tolist()}
        y, s = [labels[r] for r in scores], list(scores.values())
    else:
        y, s = [labels[r] for r in owners.tolist()], logits.tolist()
    return float(roc_auc_score(y, s)) if len(set(y)) == 2 else None


def _distillation_teacher(cfg: RecipeConfig, spec: Variant, fold: int | None, device, log):
    weight = cfg.classifier.kd_weight if spec.kd == "feature" else cfg.classifier.logit_kd_weight
    if not spec.teacher or weight <= 0:
        return None, 0.0
    path = cfg.work.classifier(spec.teacher, fold)
    if not path.is_file():
        log(f"no {spec.teacher} model for this fold at {path}: trained without distillation")
        return None, 0.0
    log(f"{spec.kd} distillation from the fold's {spec.teacher} (weight {weight})")
    return load_classifier(cfg, spec.teacher, fold).to(device), weight


def run_name(variant: str, source_fraction: float = 1.0) -> str:
    """Where a run's weights and log go: the variant, tagged with its share of training sources below 1."""
    return variant if source_fraction >= 1.0 else f"{variant}-sources{round(100 * source_fraction)}"


def training_groups(records: list, fold: int | None, fraction: float, seed: int) -> set[str]:
    """The training sources (generator families and photo sources outside ``fold``) a run may use: all of
    them, or per class a seeded share ``fraction`` (at least one), nested — a smaller share is a subset
    of a larger one — so a learning curve adds sources without swapping them."""
    out: set[str] = set()
    for label in (0, 1):
        groups = sorted({r.group for r in records if r.label == label and r.fold != fold})
        random.Random(f"{seed}/{fold}/{label}").shuffle(groups)
        out.update(groups[: max(1, math.ceil(fraction * len(groups)))])
    return out


def train_classifier(cfg: RecipeConfig, variant: str, fold: int | None, log=print, source_fraction: float = 1.0) -> dict:
    """Train one variant on everything outside ``fold`` (None: everything) — or on a seeded share
    ``source_fraction`` of those sources (the learning curve); save weights and the held-out fold's raw
    tile logits under every cached condition."""
    c = cfg.classifier
    spec = VARIANTS[variant]
    name = run_name(variant, source_fraction)
    set_threads(cfg.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    seed = c.seed + 1000 * list(VARIANTS).index(variant) + (0 if fold is None else fold + 1)
    gen = seed_everything(seed)
    records = corpus_records(cfg)
    labels = {i: r.label for i, r in enumerate(records)}
    held = {i for i, r in enumerate(records) if r.fold == fold} if fold is not None else set()
    crops = load_crops(cfg, with_dire=spec.inputs == "dire" or (spec.kd == "feature" and c.kd_weight > 0))
    usable = crops["has_dire"] if spec.inputs == "dire" else torch.ones(len(crops["record"]), dtype=torch.bool)
    allowed = training_groups(records, fold, source_fraction, c.seed)
    train_rows = torch.tensor([i for i, r in enumerate(crops["record"].tolist())
                               if r not in held and usable[i] and records[r].group in allowed])
    y_all = crops["label"].float()
    teacher, kd_weight = _distillation_teacher(cfg, spec, fold, device, lambda m: log(f"[{variant}] {m}"))
    clean = load_tiles(cfg, "clean") if spec.inputs != "dire" and cfg.work.tiles("clean").is_file() else None

    model = DistilDIREStudent(c.depth, IN_CHANNELS[spec.inputs]).to(device)
    steps_per_epoch = len(train_rows) // c.batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=c.lr, total_steps=c.epochs * steps_per_epoch, pct_start=0.15)
    n_pos = float(y_all[train_rows].sum())
    pos_weight = torch.tensor((len(train_rows) - n_pos) / max(n_pos, 1.0), device=device)
    history, start = [], time.time()
    for epoch in range(c.epochs):
        model.train()
        order = train_rows[torch.randperm(len(train_rows), generator=gen)]
        totals = {"bce": 0.0, "kd": 0.0}
        for step in range(steps_per_epoch):
            rows = order[step * c.batch_size : (step + 1) * c.batch_size]
            x = model_input(spec.inputs, crops, rows).to(device)
            y = y_all[rows].to(device)
            target = y * (1 - c.label_smoothing) + 0.5 * c.label_smoothing
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=c.bf16):
                out = model(x)
            logit = out["logit"].float().squeeze(1)
            bce = F.binary_cross_entropy_with_logits(logit, target, pos_weight=pos_weight)
            kd = torch.zeros((), device=device)
            if teacher is not None:
                kd = kd_weight * _distillation_loss(spec, teacher, crops, rows, out, logit, device)
            loss = bce + kd
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            totals["bce"] += bce.item()
            totals["kd"] += kd.item()
        record = {"epoch": epoch + 1, "bce": totals["bce"] / steps_per_epoch, "kd": totals["kd"] / steps_per_epoch,
                  "minutes": (time.time() - start) / 60}
        if held:
            tensors = clean if clean is not None else crops
            record["held_out_auc"] = held_out_auc(model, spec.inputs, tensors, labels, held, per_image=clean is not None)
        history.append(record)
        log(f"[{name} fold {fold if fold is not None else 'all'}] epoch {epoch + 1}/{c.epochs}: bce {record['bce']:.4f}"
            + (f" kd {record['kd']:.4f}" if teacher is not None else "")
            + (f" held-out AUC {record['held_out_auc']:.4f}" if record.get("held_out_auc") is not None else "")
            + f" ({record['minutes']:.1f} min)")

    path = cfg.work.classifier(name, fold)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(path))
    summary = {"variant": variant, "fold": fold, "source_fraction": source_fraction, "train_sources": sorted(allowed),
               "train_images": len({int(r) for r in crops["record"][train_rows].tolist()}),
               "train_crops": len(train_rows), "distilled_from": spec.teacher
               if teacher is not None else None, "history": history,
               "held_out_tile_logits": held_out_tile_logits(cfg, model, spec.inputs, held) if held and clean is not None else {}}
    write_json(cfg.work.classifier_log(name, fold), summary)
    return summary


def _distillation_loss(spec: Variant, teacher, crops: dict[str, torch.Tensor], rows: torch.Tensor, out: dict,
                       logit: torch.Tensor, device) -> torch.Tensor:
    """Feature distillation (MSE between layer4 maps, on crops that have a DIRE map) or logit
    distillation (BCE towards the teacher's p(fake))."""
    if spec.kd == "feature":
        keep = crops["has_dire"][rows]
        if not keep.any():
            return torch.zeros((), device=device)
        with torch.no_grad():
            target = teacher(model_input("dire", crops, rows[keep]).to(device))["feature"].float()
        return F.mse_loss(out["feature"].float()[keep.to(device)], target)
    with torch.no_grad():
        soft = torch.sigmoid(teacher(model_input(VARIANTS[spec.teacher].inputs, crops, rows).to(device))["logit"].float().squeeze(1))
    return F.binary_cross_entropy_with_logits(logit, soft)


def held_out_tile_logits(cfg: RecipeConfig, model, inputs: str, held: set[int]) -> dict:
    """Per cached condition: {record: [raw tile logits]} for the held-out records."""
    out = {}
    for condition in cfg.eval.conditions:
        if not cfg.work.tiles(condition).is_file():
            continue
        tiles = load_tiles(cfg, condition)
        owners = tiles["record"]
        index = torch.tensor([i for i, r in enumerate(owners.tolist()) if r in held], dtype=torch.long)
        if len(index) == 0:
            continue
        logits = raw_logits(model, inputs, tiles, index)
        per_record: dict[str, list[float]] = {}
        for record, z in zip(owners[index].tolist(), logits.tolist()):
            per_record.setdefault(str(record), []).append(round(z, 5))
        out[condition] = per_record
    return out


def fold_argument(value: str) -> int | None:
    return None if value == "all" else int(value)


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--variant", choices=list(VARIANTS), required=True)
    parser.add_argument("--fold", type=fold_argument, nargs="+", default=[None], help="fold indices, or 'all'")
    parser.add_argument("--source-fraction", type=float, default=1.0, help="share of the training sources (learning curve)")
    args = parser.parse_args()
    cfg = load_config(args.config)
    for fold in args.fold:
        train_classifier(cfg, args.variant, fold, log=lambda m: print(m, flush=True), source_fraction=args.source_fraction)


if __name__ == "__main__":
    main()
