"""Stages 5–7 — the classifiers, one training loop for all four roles:

| role         | input        | loss                                                                      |
| ------------ | ------------ | ------------------------------------------------------------------------- |
| ``teacher``  | DIRE map     | BCE                                                                       |
| ``student``  | [image, ε]   | BCE + λ·MSE(layer4, teacher layer4 on the image's DIRE)  (DistilDIRE)     |
| ``image-only`` | image      | BCE + λ·MSE(layer4, student layer4) + μ·BCE(logit, student's p)           |
| ``baseline`` | image        | BCE (no distillation: what distillation buys is measured against this)    |

Augmentation (flip, JPEG at a random quality, down-and-up resize, optional CutMix) is applied to both
classes alike. Whenever an image is altered, its ε is recomputed from the altered pixels with the
shipped UNet (one call), so the student never sees an image paired with another image's ε. The
teacher's target is its layer4 map on the DIRE of the unaltered image (flipped with it).
Validation AP each epoch; the best epoch by val AP is kept.

    python -m train.classifiers --config train/configs/bundled.json --role student
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from PIL import Image
from safetensors.torch import load_file, save_file
from sklearn.metrics import average_precision_score
from torch.nn import functional as F

from detector.models import DistilDIREStudent

from .cache import compute_maps, load_cache, shipped_unet
from .common import model_inputs, seed_everything, set_threads, write_json
from .config import ClassifierConfig, RecipeConfig, config_parser, load_config


@dataclass(frozen=True)
class Role:
    inputs: str  # "dire" | "image+eps" | "image"
    teacher: str | None  # role whose model provides distillation targets
    logit_kd: bool = False


ROLES = {
    "teacher": Role("dire", None),
    "student": Role("image+eps", "teacher"),
    "image-only": Role("image", "student", logit_kd=True),
    "baseline": Role("image", None),
}
IN_CHANNELS = {"dire": 3, "image+eps": 6, "image": 3}


def checkpoint_path(cfg: RecipeConfig, role: str) -> Path:
    return Path(cfg.workdir) / "classifiers" / f"{role}.safetensors"


def load_classifier(cfg: RecipeConfig, role: str) -> DistilDIREStudent:
    model = DistilDIREStudent(cfg.classifier.depth, IN_CHANNELS[ROLES[role].inputs])
    model.load_state_dict(load_file(str(checkpoint_path(cfg, role))))
    return model.eval()


# ------------------------------------------------------------------------------------ augmentation
def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(img).save(buffer, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(buffer).convert("RGB"))


def down_up(img: np.ndarray, factor: float) -> np.ndarray:
    """Resize by ``factor`` (antialiased) and back: the loss of detail a resized upload carries."""
    h, w = img.shape[:2]
    small = Image.fromarray(img).resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.BILINEAR, reducing_gap=None)
    return np.asarray(small.resize((w, h), Image.BILINEAR))


def augment(pixels: torch.Tensor, c: ClassifierConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample random flip / JPEG / resize on uint8 N×3×H×W. Returns (pixels, flipped, altered)."""
    n = len(pixels)
    flipped = (torch.rand(n, generator=gen) < 0.5) if c.flip else torch.zeros(n, dtype=torch.bool)
    use_jpeg = torch.rand(n, generator=gen) < c.jpeg_prob
    use_resize = torch.rand(n, generator=gen) < c.resize_prob
    qualities = torch.randint(c.jpeg_quality[0], c.jpeg_quality[1] + 1, (n,), generator=gen)
    factors = 0.5 + 0.4 * torch.rand(n, generator=gen)
    out = pixels.clone()
    for i in range(n):
        if not (flipped[i] or use_jpeg[i] or use_resize[i]):
            continue
        img = out[i].permute(1, 2, 0).numpy()
        if flipped[i]:
            img = img[:, ::-1]
        if use_resize[i]:
            img = down_up(np.ascontiguousarray(img), float(factors[i]))
        if use_jpeg[i]:
            img = jpeg(np.ascontiguousarray(img), int(qualities[i]))
        out[i] = torch.from_numpy(np.array(img)).permute(2, 0, 1)  # a writable copy
    return out, flipped, flipped | use_jpeg | use_resize


def cutmix(tensors: list[torch.Tensor], labels: torch.Tensor, gen: torch.Generator) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Paste one random box from a shuffled partner into every sample, identically in all ``tensors``;
    labels mixed by the pasted area (after clipping)."""
    n, _, h, w = tensors[0].shape
    lam = torch.rand(1, generator=gen).item()
    bh, bw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    top, left = torch.randint(0, h - bh + 1, (1,), generator=gen).item(), torch.randint(0, w - bw + 1, (1,), generator=gen).item()
    partner = torch.randperm(n, generator=gen)
    mixed = []
    for t in tensors:
        t = t.clone()
        t[:, :, top : top + bh, left : left + bw] = t[partner, :, top : top + bh, left : left + bw]
        mixed.append(t)
    area = bh * bw / (h * w)
    return mixed, (1 - area) * labels + area * labels[partner]


# ------------------------------------------------------------------------------------ training
class Batcher:
    """Builds the inputs of one role for a batch: the model's input, and the teacher's targets."""

    def __init__(self, cfg: RecipeConfig, role: str, cache: dict[str, torch.Tensor], unet, teacher,
                 device: torch.device | str = "cpu"):
        self.cfg, self.role, self.spec, self.device = cfg, role, ROLES[role], torch.device(device)
        self.cache, self.unet, self.teacher = cache, unet, teacher
        self.size = cfg.data.patch_size
        used = {self.spec.inputs} | ({ROLES[self.spec.teacher].inputs} if teacher is not None else set())
        self.needs_eps, self.needs_dire = "image+eps" in used, "dire" in used

    def eps_for(self, x: torch.Tensor, index: torch.Tensor, altered: torch.Tensor) -> torch.Tensor:
        eps = self.cache["eps"][index].to(self.device)
        altered = altered.to(self.device)
        if altered.any():
            eps[altered] = compute_maps(self.unet, x[altered], self.cfg.cache.dire_steps, with_dire=False)[0]
        return eps

    def inputs(self, index: torch.Tensor, gen: torch.Generator | None) -> dict[str, torch.Tensor]:
        """``gen`` None: clean validation inputs (cached ε, no augmentation)."""
        pixels = self.cache["images"][index]
        dire = self.cache["dire"][index]
        if gen is not None and self.spec.inputs != "dire":
            pixels, flipped, altered = augment(pixels, self.cfg.classifier, gen)
        else:
            flipped = (torch.rand(len(index), generator=gen) < 0.5) if gen is not None else torch.zeros(len(index), dtype=torch.bool)
            altered = torch.zeros(len(index), dtype=torch.bool)
        dire = torch.where(flipped[:, None, None, None], dire.flip(-1), dire)
        x = model_inputs(pixels, self.size).to(self.device)
        batch = {"x": x}
        if self.needs_dire:
            batch["dire"] = model_inputs(dire, self.size).to(self.device)
        if self.needs_eps:
            batch["eps"] = self.eps_for(x, index, altered)
        return batch

    @staticmethod
    def model_input(inputs: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if inputs == "dire":
            return batch["dire"]
        if inputs == "image+eps":
            return torch.cat([batch["x"], batch["eps"]], dim=1)
        return batch["x"]


def predict(model, batcher: Batcher, n: int, batch_size: int = 128) -> np.ndarray:
    """p(fake) on the clean cached split."""
    model.eval()
    probs = []
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            index = torch.arange(start, min(n, start + batch_size))
            batch = batcher.inputs(index, None)
            probs.append(torch.sigmoid(model(Batcher.model_input(batcher.spec.inputs, batch))["logit"].float()).squeeze(1))
    return torch.cat(probs).cpu().numpy()


def train_classifier(cfg: RecipeConfig, role: str, log=print) -> dict:
    """Train one role; the best epoch by validation AP is saved. Data-parallel under ``accelerate launch``:
    every process draws the same epoch order and takes its own slice of each step's indices."""
    c = cfg.classifier
    spec = ROLES[role]
    set_threads(cfg.threads)
    accelerator = Accelerator()
    device = accelerator.device
    seed = c.seed + list(ROLES).index(role)
    order_gen = seed_everything(seed)  # identical on every process
    aug_gen = torch.Generator().manual_seed(seed * 1000 + accelerator.process_index + 1)
    train_cache, _ = load_cache(cfg, "train")
    val_cache, _ = load_cache(cfg, "val")
    needs_unet = spec.inputs == "image+eps" or spec.teacher == "student"
    unet = shipped_unet(cfg).to(device) if needs_unet else None
    teacher = load_classifier(cfg, spec.teacher).to(device) if spec.teacher else None
    model = DistilDIREStudent(c.depth, IN_CHANNELS[spec.inputs])
    train_batcher = Batcher(cfg, role, train_cache, unet, teacher, device)
    val_batcher = Batcher(cfg, role, val_cache, unet, None, device)
    labels = train_cache["labels"].float()
    n = len(labels)
    steps_per_epoch = n // c.batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=c.lr, total_steps=c.epochs * steps_per_epoch, pct_start=0.1)
    model, optimizer = accelerator.prepare(model, optimizer)
    rank, world = accelerator.process_index, accelerator.num_processes
    best, history = -1.0, []
    start = time.time()
    for epoch in range(c.epochs):
        model.train()
        order = torch.randperm(n, generator=order_gen)
        totals = {"bce": 0.0, "kd": 0.0}
        for step in range(steps_per_epoch):
            index = order[step * c.batch_size : (step + 1) * c.batch_size][rank::world]
            batch = train_batcher.inputs(index, aug_gen)
            y = labels[index].to(device)
            x_in = Batcher.model_input(spec.inputs, batch)
            target = None
            if teacher is not None:
                with torch.no_grad():
                    target = {k: v.float() for k, v in teacher(Batcher.model_input(ROLES[spec.teacher].inputs, batch)).items()}
            if c.cutmix_prob and torch.rand(1, generator=aug_gen).item() < c.cutmix_prob:
                (x_in,), y = cutmix([x_in], y, aug_gen)  # teacher targets stay those of the unmixed batch
                target = None
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=c.bf16):
                out = model(x_in)
            logit = out["logit"].float().squeeze(1)
            bce = F.binary_cross_entropy_with_logits(logit, y)
            kd = torch.zeros((), device=device)
            if target is not None:
                kd = c.kd_weight * F.mse_loss(out["feature"].float(), target["feature"])
                if spec.logit_kd:
                    kd = kd + c.logit_kd_weight * F.binary_cross_entropy_with_logits(logit, torch.sigmoid(target["logit"].squeeze(1)))
            loss = bce + kd
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            totals["bce"] += bce.item()
            totals["kd"] += kd.item()
        val_probs = predict(accelerator.unwrap_model(model), val_batcher, len(val_cache["labels"]))
        val_ap = float(average_precision_score(val_cache["labels"].numpy(), val_probs))
        record = {"epoch": epoch + 1, "bce": totals["bce"] / steps_per_epoch, "kd": totals["kd"] / steps_per_epoch,
                  "val_ap": val_ap, "minutes": (time.time() - start) / 60}
        history.append(record)
        log(f"[{role}] epoch {epoch + 1}/{c.epochs}: bce {record['bce']:.4f} kd {record['kd']:.4f} val AP {val_ap:.4f} "
            f"({record['minutes']:.1f} min)")
        if val_ap > best:
            best = val_ap
            if accelerator.is_main_process:
                path = checkpoint_path(cfg, role)
                path.parent.mkdir(parents=True, exist_ok=True)
                state = accelerator.unwrap_model(model).state_dict()
                save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path))
    summary = {"role": role, "best_val_ap": best, "history": history}
    if accelerator.is_main_process:
        write_json(Path(cfg.workdir) / "classifiers" / f"{role}.json", summary)
    accelerator.wait_for_everyone()
    return summary


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--role", choices=list(ROLES), required=True)
    args = parser.parse_args()
    train_classifier(load_config(args.config), args.role, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
