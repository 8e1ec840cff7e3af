"""A probe for the cheaper-ε-network lever: distil a narrower UNet from the recipe's ε-network on ε at
t = 0 alone (the only thing DistilDIRE reads), then score the clean tile cache with the EXISTING fold
students on the narrow network's ε. Prints the UNet's speed, the ε error on held-out crops and the
out-of-fold AUC / TPR / FPR at the card threshold beside the shipped ε's.

A measurement, not a recipe stage: the students are not retrained on the new ε (which the lever would
need before adoption), so the AUC it prints is a conservative first reading.

    python -m train.eps_probe --config train/configs/bundled.json --channels 16,16,32,64 --groups 16 --minutes 15
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from safetensors.torch import load_file
from sklearn.metrics import roc_auc_score

from detector.costs import median_ms
from detector.ddim import DDIM
from detector.models import build_unet, small_unet_config
from detector.tiling import aggregate

from .classifiers import load_classifier, raw_logits
from .common import schedule_of, shipped_unet, to_unit, unet_source
from .config import RecipeConfig, config_parser, load_config
from .corpus import corpus_records


def unet_ms(unet, tiles: int = 16) -> float:
    """ms for one call on ``tiles`` 64-px inputs (channels_last, fp32, as the detector runs it)."""
    unet = unet.eval().to(memory_format=torch.channels_last)
    x = torch.zeros(tiles, 3, unet.config.sample_size, unet.config.sample_size).contiguous(memory_format=torch.channels_last)
    t = torch.zeros(tiles, dtype=torch.long)
    with torch.inference_mode():
        return median_ms(lambda: unet(x, t), repeats=5)


def distil(cfg: RecipeConfig, channels: tuple[int, ...], groups: int, minutes: float, log=print):
    """A narrow UNet trained to give the recipe UNet's ε at t = 0 on the cached training crops."""
    torch.manual_seed(0)
    config = small_unet_config(cfg.crops.tile, channels, (), 1)
    config["norm_num_groups"] = groups
    student = build_unet(config).float().train()
    ddim = DDIM(schedule_of(unet_source(cfg), cfg.diffusion.schedule), 20)
    crops = load_file(str(cfg.work.crops))
    pixels, target = crops["pixels"], crops["eps"]
    held = torch.arange(len(pixels) - 1024, len(pixels))
    optimizer = torch.optim.AdamW(student.parameters(), lr=2e-3, weight_decay=0.0)
    generator, start, step = torch.Generator().manual_seed(0), time.time(), 0

    def eps_of(x: torch.Tensor) -> torch.Tensor:
        return ddim.eps_at_start(lambda xt, t: student(xt, t).sample[:, :3].float(), x)

    while time.time() - start < minutes * 60:
        rows = torch.randint(0, len(pixels) - 1024, (64,), generator=generator)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            prediction = eps_of(to_unit(pixels[rows]))
        loss = torch.nn.functional.mse_loss(prediction.float(), target[rows].float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % 200 == 0:
            log(f"step {step}: loss {loss.item():.4f} ({(time.time() - start) / 60:.1f} min)")
    student.eval()
    with torch.inference_mode():
        predicted = torch.cat([eps_of(to_unit(pixels[held[i : i + 128]])) for i in range(0, len(held), 128)])
    truth = target[held].float()
    error = float((predicted - truth).norm() / truth.norm())
    return student, ddim, error, step


@torch.inference_mode()
def oof_scores(cfg: RecipeConfig, tiles: dict, records, rule: str) -> dict[int, float]:
    """Raw image logits of every record by its fold's student on ``tiles`` (pixels + eps)."""
    owners, out = tiles["record"], {}
    for fold in range(cfg.corpus.folds):
        index = torch.tensor([i for i, r in enumerate(owners.tolist()) if records[r].fold == fold], dtype=torch.long)
        z = raw_logits(load_classifier(cfg, "student", fold), "image+eps", tiles, index)
        for record in owners[index].unique().tolist():
            out[record] = aggregate(z[owners[index] == record], rule)
    return out


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--channels", default="16,16,32,64")
    parser.add_argument("--groups", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=15.0)
    args = parser.parse_args()
    cfg = load_config(args.config)
    channels = tuple(int(c) for c in args.channels.split(","))
    teacher = shipped_unet(unet_source(cfg))
    student, ddim, error, steps = distil(cfg, channels, args.groups, args.minutes, log=lambda m: print(m, flush=True))
    print(f"UNet {channels} (GroupNorm {args.groups}, no attention): {sum(p.numel() for p in student.parameters()) / 1e6:.2f} M "
          f"parameters, {unet_ms(student):.1f} ms per 16 tiles; recipe UNet {unet_ms(teacher):.1f} ms")
    print(f"held-out crops: relative ε error {error:.3f} after {steps} steps ({args.minutes:g} min)")
    records = corpus_records(cfg)
    tiles = load_file(str(cfg.work.tiles("clean")))
    with torch.inference_mode():
        narrow = torch.cat([ddim.eps_at_start(lambda xt, t: student(xt, t).sample[:, :3].float(), to_unit(tiles["pixels"][i : i + 256]))
                            for i in range(0, len(tiles["pixels"]), 256)]).half()
    shipped = json.loads(cfg.work.metrics.read_text())["models"]["student"]
    calibration, threshold = shipped["calibration"], shipped["threshold"]
    for name, eps in (("recipe ε", tiles["eps"]), ("narrow ε", narrow)):
        scores = oof_scores(cfg, {**tiles, "eps": eps}, records, shipped["aggregate"])
        ids = sorted(scores)
        y = np.array([records[r].label for r in ids])
        p = 1 / (1 + np.exp(-(np.array([scores[r] for r in ids]) / calibration["temperature"] + calibration["bias"])))
        print(f"{name}: out-of-fold AUC {roc_auc_score(y, p):.4f}, TPR {(p[y == 1] >= threshold).mean():.3f}, "
              f"FPR {(p[y == 0] >= threshold).mean():.3f} at the card threshold {threshold:.3f} (students not retrained)")


if __name__ == "__main__":
    main()
