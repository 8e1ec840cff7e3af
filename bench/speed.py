"""DIRE (DDIM-N inversion + reconstruction, 2N UNet calls) vs DistilDIRE (1 UNet call) on the same UNet.

Prints, per UNet: UNet calls per image, ms per image for each pipeline, and their ratio. Random
weights (speed does not depend on them). Not a test: run it and read the figures.

    python -m bench.speed                 # bundled UNet (64 px) + ADM-256 topology at a reduced 64 px input
    python -m bench.speed --adm-size 256  # the real ADM resolution (slow on CPU: minutes per DIRE image)
    python -m bench.speed --adm-size 256 --skip-small --batch 32 --precision bf16   # on a GPU (bench/gpu.sh)
"""

from __future__ import annotations

import argparse
import platform

import torch

from detector import WeightsNotFoundError, load_student, resolve_weights
from detector.costs import median_ms
from detector.ddim import DDIM
from detector.models import (
    ADM_256_UNCOND,
    DistilDIREStudent,
    build_unet,
    load_unet,
    small_unet_config,
    unet_config_for_adm,
)


def _time(fn, repeats: int) -> float:
    """Median wall time in ms over ``repeats`` runs, after one warm-up (``detector.costs.median_ms``)."""
    return median_ms(fn, repeats, sync=torch.cuda.synchronize if torch.cuda.is_available() else None)


@torch.inference_mode()
def measure(label: str, unet, student_depth: int, size: int, batch: int, steps: int, repeats: int, dire_repeats: int, device,
            precision: str = "fp32"):
    unet = unet.to(device).eval()
    if device.type == "cuda":
        unet = unet.to(memory_format=torch.channels_last)
    student = DistilDIREStudent(student_depth, 6).to(device).eval()
    dire_classifier = DistilDIREStudent(student_depth, 3).to(device).eval()
    ddim = DDIM(steps=steps)
    calls = {"n": 0}

    def eps_fn(x, t):
        calls["n"] += 1
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            return unet(x, t).sample[:, :3].float()

    x = torch.rand(batch, 3, size, size, device=device) * 2 - 1

    def distildire():
        eps = ddim.eps_at_start(eps_fn, x)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            return student(torch.cat([x, eps], 1))["logit"]

    def image_only():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            return dire_classifier(x)["logit"]

    def dire():
        rec = ddim.reconstruct(eps_fn, ddim.invert(eps_fn, x))
        return dire_classifier((x - rec).abs() * 2 - 1)["logit"]

    calls["n"] = 0
    distildire()
    distil_calls = calls["n"]
    calls["n"] = 0
    dire()
    dire_calls = calls["n"]
    t_distil = _time(distildire, repeats) / batch
    t_dire = _time(dire, dire_repeats) / batch
    t_image = _time(image_only, repeats) / batch
    params = sum(p.numel() for p in unet.parameters())
    print(f"{label:<34} {params / 1e6:>8.1f}M  {size:>4}px  {dire_calls:>3} calls {t_dire:>10.1f} ms   "
          f"{distil_calls:>2} call {t_distil:>8.1f} ms   {t_dire / t_distil:>6.1f}x   image-only {t_image:>7.2f} ms   "
          f"({1e3 / t_dire:.1f} / {1e3 / t_distil:.1f} / {1e3 / t_image:.0f} img/s)")
    return t_dire, t_distil


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small-size", type=int, default=64)
    parser.add_argument("--adm-size", type=int, default=64, help="input size for the ADM-256 topology")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dire-repeats", type=int, default=2)
    parser.add_argument("--skip-adm", action="store_true")
    parser.add_argument("--skip-small", action="store_true")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: autocast for UNet and classifiers (fp32 is the library's default)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    hardware = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"device: {device} ({hardware}); torch {torch.__version__}; {args.precision}; batch {args.batch}; DDIM {args.steps}")
    print(f"{'UNet':<34} {'params':>9}  {'size':>5}  {'DIRE':>20}   {'DistilDIRE':>17}   {'ratio':>6}")
    if not args.skip_small:
        try:  # the bundled UNet and student depth when present, else the same architecture
            spec = resolve_weights("bundled")
            small, depth, label = load_unet(spec.unet), load_student(spec.student).arch.depth, "bundled UNet"
        except WeightsNotFoundError:
            small, depth, label = build_unet(small_unet_config(sample_size=args.small_size)), 10, "small UNet"
        size = int(small.config.sample_size)
        measure(f"{label} + ResNet-{depth}", small, depth, size, args.batch, args.steps, args.repeats,
                args.dire_repeats, device, args.precision)
    if not args.skip_adm:
        adm = build_unet(unet_config_for_adm(ADM_256_UNCOND))
        measure("ADM-256 topology + ResNet-50", adm, 50, args.adm_size, args.batch, args.steps,
                args.repeats, 1, device, args.precision)


if __name__ == "__main__":
    main()
