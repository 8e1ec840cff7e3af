"""``python -m detector``: ``scan`` images or folders (sharded under ``accelerate launch``), list ``models``,
``download`` official weights, ``convert-adm`` a guided-diffusion checkpoint."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".jfif", ".avif", ".heic"}


def collect_inputs(paths: list[str]) -> list[str]:
    """Files as given (whatever their type, so bad ones are reported); folders recursed for images."""
    found: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(str(p) for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            found.append(raw)
    return found


def cmd_scan(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .pipeline import Detector
    from .registry import WeightsNotFoundError
    from .report import format_table

    inputs = collect_inputs(args.paths)
    if not inputs:
        print("error: no image files found in the given paths", file=sys.stderr)
        return 2
    options = {"batch_size": args.batch_size}
    if args.threshold is not None:
        options["threshold"] = args.threshold

    def build(device=None) -> Detector:
        if args.device or device is not None:
            options["device"] = args.device or device
        if args.student:
            return Detector.from_files(student=args.student, unet=args.unet, **options)
        return Detector.from_pretrained(args.weights, **options)

    if args.jsonl or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return _scan_streaming(args, inputs, build)
    try:
        detector = build()
    except (WeightsNotFoundError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows: list[dict] = []
    with tqdm(total=len(inputs), unit="img", disable=args.quiet or None, file=sys.stderr) as bar:
        for start in range(0, len(inputs), args.batch_size):
            chunk = inputs[start : start + args.batch_size]
            rows.extend(r.to_dict() for r in detector.detect(chunk, with_dire=args.dire))
            bar.update(len(chunk))
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"model": detector.describe(), "results": rows}, indent=2))
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["source", "verdict", "label", "p_fake", "logit", "unet_calls", "total_ms", "error",
                             "low_confidence", "provenance"])
            for r in rows:
                writer.writerow([r["source"], r["verdict"], r["label"], r["p_fake"], r["logit"], r["unet_calls"],
                                 r["timings_ms"].get("total"), r["error"], r.get("low_confidence", False),
                                 (r.get("provenance") or {}).get("summary")])
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("fake", "unsure", "real", "error")}
    print(f"\n{len(rows)} files: {counts['fake']} fake, {counts['unsure']} unsure ({detector.policy.describe_band()}; "
          f"threshold {detector.threshold:.2f}), {counts['real']} with no sign of generation found, {counts['error']} "
          f"unreadable", file=sys.stderr)
    return 0


def _scan_streaming(args: argparse.Namespace, inputs: list[str], build) -> int:
    """Sharded over the processes ``accelerate launch`` / ``torchrun`` started (or one), JSONL as it goes."""
    from .registry import WeightsNotFoundError
    from .scan import scan_to_jsonl

    if not args.jsonl:
        print("error: a scan over several processes writes --jsonl OUT (and resumes from it)", file=sys.stderr)
        return 2
    try:
        counts = scan_to_jsonl(build, inputs, Path(args.jsonl), with_dire=args.dire, batch_size=args.batch_size,
                               workers=args.workers, quiet=args.quiet)
    except (WeightsNotFoundError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{counts['scored']} scored, {counts['errors']} unreadable" +
          (f", {counts['skipped']} already in {args.jsonl}" if counts["skipped"] else "") +
          f" (this process); results in {args.jsonl}", file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """The registry, from metadata and model cards (no download): each model's config in words, local or not."""
    from .card import models_listing

    print(models_listing())
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Fetch registry models into the cache, with progress bars; offline, say which files go where."""
    from .registry import OFFICIAL, WeightsNotFoundError, describe, download

    names = OFFICIAL if args.all else args.names
    if not names:
        print("error: name a model (python -m detector models lists them) or pass --all", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        try:
            entry = describe(name)
            paths = download(name)
        except WeightsNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        where = ", ".join(f"{role}: {path}" for role, path in paths.items()) or "shipped with the package"
        print(f"{entry.name}: ready ({where})")
    return status


def cmd_convert_adm(args: argparse.Namespace) -> int:
    import torch

    from .ddim import Schedule
    from .models.adm import ADMConfig, infer_adm_config
    from .models.unet import unet_from_adm_state_dict

    source = Path(args.checkpoint)
    if not source.is_file():
        print(f"error: {source} not found", file=sys.stderr)
        return 2
    state_dict = torch.load(source, map_location="cpu", weights_only=True)
    base = ADMConfig(
        image_size=args.image_size,
        num_res_blocks=args.num_res_blocks,
        channel_mult=tuple(int(v) for v in args.channel_mult.split(",")),
        attention_ds=tuple(args.image_size // int(v) for v in args.attention_resolutions.split(",")),
        num_head_channels=args.num_head_channels,
        use_new_attention_order=args.use_new_attention_order,
    )
    try:
        unet = unet_from_adm_state_dict(state_dict, infer_adm_config(state_dict, base))
    except (ValueError, RuntimeError) as exc:
        print(f"error: the checkpoint does not match the given ADM flags: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out_dir)
    unet.save_pretrained(out, safe_serialization=True)
    (out / "scheduler_config.json").write_text(json.dumps(Schedule().to_scheduler_config(), indent=2))
    n_params = sum(p.numel() for p in unet.parameters())
    print(f"converted {len(state_dict)} tensors → {len(unet.state_dict())} ({n_params:,} parameters) into {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m detector", description="DistilDIRE diffusion-image detector")
    sub = parser.add_subparsers(dest="command", required=True)

    scan = sub.add_parser("scan", help="classify images (files or folders, recursed)")
    scan.add_argument("paths", nargs="+", help="image files and/or folders")
    scan.add_argument("--weights", default="bundled", help="registry name or weights folder (default: bundled)")
    scan.add_argument("--student", help="student checkpoint file (overrides --weights)")
    scan.add_argument("--unet", help="UNet: diffusers folder or guided-diffusion .pt (with --student)")
    scan.add_argument("--dire", action="store_true", help="also compute the teacher's DIRE map (2 x DDIM steps more UNet calls per image)")
    scan.add_argument("--threshold", type=float, help="p_fake threshold (default: the model card's)")
    scan.add_argument("--batch-size", type=int, default=8)
    scan.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if available)")
    scan.add_argument("--json", help="write the results as JSON")
    scan.add_argument("--csv", help="write the results as CSV")
    scan.add_argument("--quiet", action="store_true", help="no progress bar")
    scan.add_argument("--jsonl", help="append one JSON line per file as it is scored; files already in it are "
                      "skipped (resume). Required under `accelerate launch` (inputs sharded over processes)")
    scan.add_argument("--workers", type=int, default=2, help="DataLoader workers decoding images (with --jsonl)")
    scan.set_defaults(func=cmd_scan)

    models = sub.add_parser("models", help="list the registry's models (metadata only, nothing downloaded)")
    models.set_defaults(func=cmd_models)

    fetch = sub.add_parser("download", help="fetch a model's files into the cache (~/.cache/distildire, HF cache)")
    fetch.add_argument("names", nargs="*", help="registry names, e.g. distildire-imagenet")
    fetch.add_argument("--all", action="store_true", help="every downloadable model")
    fetch.set_defaults(func=cmd_download)

    convert = sub.add_parser("convert-adm", help="guided-diffusion checkpoint → diffusers UNet folder (safetensors)")
    convert.add_argument("checkpoint", help="e.g. 256x256_diffusion_uncond.pt")
    convert.add_argument("out_dir")
    flags = convert.add_argument_group("guided-diffusion flags (defaults: 256x256_diffusion_uncond)")
    flags.add_argument("--image-size", type=int, default=256)
    flags.add_argument("--num-res-blocks", type=int, default=2)
    flags.add_argument("--channel-mult", default="1,1,2,2,4,4")
    flags.add_argument("--attention-resolutions", default="32,16,8")
    flags.add_argument("--num-head-channels", type=int, default=64)
    flags.add_argument("--use-new-attention-order", action="store_true")
    convert.set_defaults(func=cmd_convert_adm)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "scan" and args.unet and not args.student:
        print("error: --unet needs --student", file=sys.stderr)
        return 2
    return args.func(args)
