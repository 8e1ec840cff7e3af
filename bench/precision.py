"""Speed options for the ε UNet, side by side, each with its ε error against plain fp32.

Options: fp32 (the default path), channels_last, bf16 autocast (with and without channels_last), bf16
weights, the classic attention processor instead of PyTorch SDPA, torch.compile (``--compile``; its
compile time is printed), and on CUDA TF32. Bundled weights, or random weights for the ADM topology; inputs are the shipped example images.

    python -m bench.precision --unet bundled --batch 16          # the bundled UNet, one tiled image
    python -m bench.precision --unet adm --size 256 --batch 1    # official ADM-256 topology (~11 s a call on 2 cores)
    python -m bench.precision --corpus ../shared/data            # bundled model: p(fake) and AUC, fp32 vs bf16 UNet

Not a test: it prints figures (median ms per call, ε relative error ‖ε − ε_fp32‖ / ‖ε_fp32‖).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from pathlib import Path

import torch

from detector.costs import median_ms
from detector.models import ADM_256_UNCOND, build_unet, load_unet, unet_config_for_adm
from detector.registry import resolve_weights


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_ms(fn, device: torch.device, repeats: int) -> float:
    return median_ms(fn, repeats, sync=lambda: _sync(device))


def _variant(unet, option: str, device: torch.device):
    """A fresh copy of ``unet`` set up for ``option``, and the function that calls it."""
    from diffusers.models.attention_processor import Attention, AttnProcessor

    model = copy.deepcopy(unet).to(device).eval()
    channels_last = "channels_last" in option
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if option == "bf16 weights":
        model = model.to(torch.bfloat16)
    if option == "classic attention":  # diffusers' default is PyTorch SDPA (AttnProcessor2_0)
        for module in model.modules():
            if isinstance(module, Attention):
                module.set_processor(AttnProcessor())
    if option.startswith("compile"):
        model = torch.compile(model)
    autocast = option.startswith("bf16 autocast")

    def call(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if option == "bf16 weights":
            x = x.to(torch.bfloat16)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            return model(x, t).sample[:, :3].float()

    return call


def _example_inputs(size: int, batch: int) -> torch.Tensor:
    """Natural images, not noise: the shipped examples (photos and generated) resized and centre-cropped
    to ``size`` (ε at t = 0 of real pixels is where rounding is amplified most)."""
    from PIL import Image

    from detector.preprocess import to_model_tensor

    files = sorted(p for p in (Path(__file__).resolve().parents[1] / "examples").iterdir()
                   if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    images = [to_model_tensor(Image.open(files[i % len(files)]).convert("RGB"), size) for i in range(batch)]
    return torch.stack(images)


def unet_options(unet, size: int, batch: int, repeats: int, compile_too: bool, device: torch.device) -> None:
    options = ["fp32", "fp32 channels_last", "bf16 autocast", "bf16 autocast channels_last", "bf16 weights",
               "classic attention"]
    if device.type == "cuda":
        options.insert(1, "tf32")
    if compile_too:
        options.append("compile channels_last")
    x = _example_inputs(size, batch).to(device)
    t = torch.zeros(batch, dtype=torch.long, device=device)
    reference = None
    print(f"{'option':<30} {'ms / call':>10} {'ms / image':>11} {'ε rel. error':>13}")
    for option in options:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = option == "tf32"
        call = _variant(unet, option, device)
        start = time.perf_counter()
        with torch.inference_mode():
            eps = call(x, t)  # first call: includes compilation for torch.compile
            _sync(device)
            first = time.perf_counter() - start
            ms = _median_ms(lambda call=call: call(x, t), device, repeats)
        if reference is None:
            reference = eps
        error = float((eps - reference).norm() / reference.norm())
        extra = f"   (first call incl. compile {first:.1f} s)" if option.startswith("compile") else ""
        print(f"{option:<30} {ms:>10.1f} {ms / batch:>11.1f} {error:>13.2e}{extra}", flush=True)
        del call
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False


def corpus_effect(data: Path, limit: int | None) -> None:
    """The bundled model with its UNet in fp32 and under bf16 autocast on the public corpus: p(fake)
    change, verdicts changed at the card threshold, ROC-AUC of each (the shipped model saw these images in
    training, so the AUC is not a held-out figure; the difference is what this measures)."""
    import csv

    from sklearn.metrics import roc_auc_score

    from detector import Detector

    with open(data / "public_corpus" / "manifest.csv") as fh:
        rows = list(csv.DictReader(fh))
    items = [(data / "public_corpus" / r["file"], 1 if r["label"] == "fake" else 0) for r in rows]
    items += [(p, 0) for p in sorted((data / "real_photos").glob("*")) if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}]
    items = items[:limit] if limit else items
    paths, labels = [str(p) for p, _ in items], [y for _, y in items]
    scores = {}
    for precision in ("fp32", "bf16"):
        detector = Detector.from_pretrained("bundled", unet_precision=precision)
        start = time.perf_counter()
        results = detector.detect(paths, batch_size=8)
        took = time.perf_counter() - start
        scores[precision] = [r.p_fake for r in results]
        ok = [i for i, r in enumerate(results) if r.ok]
        auc = roc_auc_score([labels[i] for i in ok], [scores[precision][i] for i in ok])
        print(f"bundled, UNet {precision}: {len(ok)} images in {took:.0f} s ({len(ok) / took:.2f} img/s), ROC-AUC {auc:.4f}")
    pairs = [(a, b) for a, b in zip(scores["fp32"], scores["bf16"]) if a is not None and b is not None]
    deltas = [abs(a - b) for a, b in pairs]
    threshold = Detector.from_pretrained("bundled").threshold
    flips = sum((a >= threshold) != (b >= threshold) for a, b in pairs)
    print(f"|Δp(fake)| fp32 vs bf16: mean {statistics.mean(deltas):.4f}, max {max(deltas):.4f}; "
          f"labels changed at the card threshold {threshold:.2f}: {flips} of {len(pairs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unet", choices=["bundled", "adm"], default="bundled")
    parser.add_argument("--size", type=int, help="input size (default: the UNet's)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--corpus", type=Path, help="data folder with public_corpus/ and real_photos/")
    parser.add_argument("--limit", type=int, help="at most this many corpus images")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    hardware = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"device: {device} ({hardware}); torch {torch.__version__}")
    if args.corpus:
        corpus_effect(args.corpus, args.limit)
        return
    unet = load_unet(resolve_weights("bundled").unet) if args.unet == "bundled" else build_unet(unet_config_for_adm(ADM_256_UNCOND))
    size = args.size or int(unet.config.sample_size)
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    print(f"UNet: {args.unet} ({params:.1f} M parameters) at {size} px, batch {args.batch}")
    unet_options(unet, size, args.batch, args.repeats, args.compile, device)


if __name__ == "__main__":
    main()
