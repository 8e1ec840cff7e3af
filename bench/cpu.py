"""CPU cost of every path, side by side in one run, with each figure also in reference units.

Absolute times vary between machines, so every cost is also printed in units of one ResNet-18 forward on a
batch of 8 at 224 px (torchvision, fp32, random weights) timed in the same run. Sections:

1. networks, per runtime: PyTorch (fp32, channels_last, as served), ONNX Runtime, OpenVINO (f32), and with
   ``--compile`` torch.compile; ms per 16 tiles (the most one image makes) and the relative error of the
   output against PyTorch;
2. ``Detector.detect`` on one 1024×768 JPEG (decode, tiles, ε, student) for the bundled model and its
   image-only tier, per runtime (and the v4 path, ε from the diffusion UNet, where the weights carry a
   distilled ε network); then the bundled UNet's ε with the runtimes alternating (drift cannot bias it);
3. with ``--adm``, the official ADM-256 ε (one call at 256 px, random weights of the real topology) per runtime
   (ONNX Runtime through an export with external weights: the graph is over protobuf's 2 GB);
4. with ``--app``, the web demo (``bench.app_latency``): one image p50/p95 and a burst of 20 users, per runtime,
   on a quiet machine and with one core kept busy by another process.

    python -m bench.cpu                      # 1 and 2 (about 2 minutes on 2 cores)
    python -m bench.cpu --eps-unet runs/narrow/diffusion/unet --compile   # + a distilled ε network, torch.compile
    python -m bench.cpu --adm --app          # everything (about 15 minutes)
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import platform
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from detector import Detector, resolve_weights
from detector.costs import median_ms
from detector.loading import load_student
from detector.models import load_unet
from detector.runtime import EpsOutput, LogitOutput, OnnxNetwork

TILES = 16


def reference_ms(repeats: int) -> float:
    """The unit: ResNet-18, batch 8, 224 px, fp32."""
    from torchvision.models import resnet18

    model, x = resnet18().eval(), torch.rand(8, 3, 224, 224)
    with torch.inference_mode():
        return median_ms(lambda: model(x), repeats)


def torch_runner(module: torch.nn.Module, args: tuple):
    module = copy.deepcopy(module).to(memory_format=torch.channels_last)
    args = tuple(a.contiguous(memory_format=torch.channels_last) if a.dim() == 4 else a for a in args)

    def run():
        with torch.inference_mode():
            return module(*args)
    return run


def onnx_runner(module: torch.nn.Module, args: tuple):
    network = OnnxNetwork(module, args, "bench")
    return lambda: network(*args)


def onnx_file_runner(module: torch.nn.Module, args: tuple):
    """ONNX Runtime for a network over protobuf's 2 GB: exported to a file with its weights as external data."""
    import onnxruntime as ort

    folder = Path(tempfile.mkdtemp(prefix="onnx-large-"))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(folder / "model.onnx"), dynamo=False, opset_version=17)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    feed = {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)}
    return lambda: torch.from_numpy(session.run(None, feed)[0])


def openvino_runner(module: torch.nn.Module, args: tuple):
    import openvino as ov

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = ov.Core().compile_model(ov.convert_model(module, example_input=args), "CPU",
                                           {"INFERENCE_PRECISION_HINT": "f32"})
    arrays = [a.numpy() for a in args]
    return lambda: torch.from_numpy(compiled(arrays)[0])


def compile_runner(module: torch.nn.Module, args: tuple):
    compiled = torch.compile(copy.deepcopy(module).to(memory_format=torch.channels_last))
    args = tuple(a.contiguous(memory_format=torch.channels_last) if a.dim() == 4 else a for a in args)

    def run():
        with torch.inference_mode():
            return compiled(*args)
    return run


def runners(with_compile: bool) -> dict:
    chosen = {"PyTorch": torch_runner}
    if importlib.util.find_spec("onnxruntime"):
        chosen["ONNX Runtime"] = onnx_runner
    if importlib.util.find_spec("openvino"):
        chosen["OpenVINO f32"] = openvino_runner
    if with_compile:
        chosen["torch.compile"] = compile_runner
    return chosen


def network_table(networks: dict, unit: float, repeats: int, with_compile: bool) -> None:
    chosen = runners(with_compile)
    print(f"\n1. networks, ms per call ({' | '.join(chosen)}), in units, and max relative error against PyTorch")
    for label, (module, args) in networks.items():
        module = module.eval()
        with torch.no_grad():
            reference = module(*args)
        cells = []
        for name, make in chosen.items():
            try:
                run = make(module, args)
                out = run().float()
                error = float((out - reference).norm() / reference.norm())
                ms = median_ms(run, repeats)
                cells.append(f"{name} {ms:7.1f} ms {ms / unit:5.2f} u" + (f" (err {error:.0e})" if name != "PyTorch" else ""))
            except Exception as exc:  # a runtime that cannot take this network: say so, keep going
                cells.append(f"{name} failed: {type(exc).__name__}")
        print(f"  {label:<40} " + " | ".join(cells), flush=True)


def photo_jpeg(folder: Path, width: int = 1024, height: int = 768) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 37 + yy / 23)], -1) * 220 + rng.normal(0, 6, (height, width, 3))
    path = folder / "photo_1024x768.jpg"
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
    return path


def detect_table(path: Path, unit: float, repeats: int) -> None:
    spec, fast = resolve_weights("bundled"), resolve_weights("bundled-fast")
    paths = {}
    if spec.dire_unet is not None:  # the v4 default read ε from the diffusion UNet itself
        paths["v4 path: ε from the diffusion UNet"] = lambda runtime: Detector.from_files(
            spec.student, spec.dire_unet, config=spec.config, runtime=runtime)
    paths["bundled (default)"] = lambda runtime: Detector.from_spec(spec, runtime=runtime)
    paths["bundled-fast (image-only)"] = lambda runtime: Detector.from_spec(fast, runtime=runtime)
    rts = ["torch"] + (["onnxruntime"] if importlib.util.find_spec("onnxruntime") else [])
    print(f"\n2. Detector.detect on one 1024x768 JPEG: ms per image, images/s, units (runtime= {', '.join(rts)})")
    for label, build in paths.items():
        cells = []
        for runtime in rts:
            detector = build(runtime)
            ms = median_ms(lambda d=detector: d.detect([path], provenance=False), repeats)
            cells.append(f"{runtime:<11} {ms:7.1f} ms {1e3 / ms:5.1f}/s {ms / unit:5.2f} u")
        print(f"  {label:<38} " + " | ".join(cells), flush=True)


def ab_table(rounds: int = 12) -> None:
    """The bundled UNet's ε through ``EpsExtractor``, PyTorch and ONNX Runtime alternating (3 calls each per
    round), with 2 threads and with 1: a comparison that machine drift cannot bias."""
    import statistics
    import time

    from detector.features import EpsExtractor

    spec = resolve_weights("bundled")
    folder = spec.dire_unet or spec.unet
    extractors = {rt: EpsExtractor(load_unet(folder).float(), runtime=rt) for rt in ("torch", "onnxruntime")}
    x = torch.rand(TILES, 3, 64, 64) * 2 - 1
    threads = torch.get_num_threads()
    print(f"\n2b. the bundled UNet's ε x{TILES}, runtimes alternating ({rounds} rounds of 3 calls each)")
    for n in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(n)
        samples = {rt: [] for rt in extractors}
        for _ in range(rounds):
            for rt, extractor in extractors.items():
                for _ in range(3):
                    start = time.perf_counter()
                    extractor(x)
                    samples[rt].append((time.perf_counter() - start) * 1e3)
        medians = {rt: statistics.median(v[3:]) for rt, v in samples.items()}
        print(f"  {n} thread(s): PyTorch p50 {medians['torch']:.1f} ms | ONNX Runtime p50 {medians['onnxruntime']:.1f} ms "
              f"({medians['torch'] / medians['onnxruntime']:.2f}x)", flush=True)
    torch.set_num_threads(threads)


def adm_table(unit: float) -> None:
    from detector.models import ADM_256_UNCOND, build_unet, unet_config_for_adm

    torch.manual_seed(0)
    adm = EpsOutput(build_unet(unet_config_for_adm(ADM_256_UNCOND))).eval()
    args = (torch.rand(1, 3, 256, 256) * 2 - 1, torch.zeros(1, dtype=torch.long))
    chosen = runners(with_compile=False)  # compiling the 552 M-parameter graph takes longer than it could save here
    if "ONNX Runtime" in chosen:  # 2.2 GB of weights: over protobuf's 2 GB, so the export keeps them as external data
        chosen["ONNX Runtime"] = onnx_file_runner
    print(f"\n3. official ADM-256 ε, one image (one call at 256 px), per runtime ({', '.join(chosen)})")
    with torch.no_grad():
        reference = adm(*args)
    for name, make in chosen.items():
        try:
            run = make(adm, args)
            error = float((run().float() - reference).norm() / reference.norm())
            ms = median_ms(run, 2)
            print(f"  {name:<14} {ms / 1e3:6.2f} s  {ms / unit:6.1f} u" + (f"  (err {error:.0e})" if name != "PyTorch" else ""),
                  flush=True)
        except Exception as exc:
            print(f"  {name:<14} failed: {type(exc).__name__}: {str(exc)[:120]}", flush=True)


def app_table(repeats: int, users: int) -> None:
    from .app_latency import latency_figures

    rts = ["torch"] + (["onnxruntime"] if importlib.util.find_spec("onnxruntime") else [])
    print(f"\n4. the web demo (bundled, 640x480 JPEGs): one image p50/p95, {users} users at once (wall, p95)")
    for busy in (False, True):
        for runtime in rts:
            figures = latency_figures("bundled", repeats, users, busy, {"DISTILDIRE_RUNTIME": runtime})
            print(f"  {'one core busy' if busy else 'quiet':<14} {runtime:<11} one image p50 {figures['p50_1']:6.0f} ms "
                  f"p95 {figures['p95_1']:6.0f} ms | {users} users: {figures['failures']} failures, wall "
                  f"{figures['burst_ms']:6.0f} ms ({figures['burst_ms'] / figures['p50_1']:.1f}x p50), p95 "
                  f"{figures['burst_p95']:6.0f} ms; CPU per image: server {figures['burst_server_cpu_ms_per_image']:.0f} ms, "
                  f"clients {figures['burst_client_cpu_ms_per_image']:.0f} ms", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--compile", action="store_true", help="also torch.compile (minutes of compilation)")
    parser.add_argument("--adm", action="store_true", help="also the ADM-256 ε per runtime (a few minutes)")
    parser.add_argument("--app", action="store_true", help="also the web demo, quiet and with one core busy")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--eps-unet", help="also time this ε network (a diffusers UNet folder, e.g. a distilled one)")
    args = parser.parse_args()
    os.environ.setdefault("DISTILDIRE_CACHE", tempfile.mkdtemp(prefix="distildire-bench-"))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)")
    unit = reference_ms(args.repeats)
    print(f"unit: ResNet-18 batch 8 at 224 px = {unit:.1f} ms")
    spec, fast = resolve_weights("bundled"), resolve_weights("bundled-fast")
    x = torch.rand(TILES, 3, 64, 64) * 2 - 1
    t = torch.zeros(TILES, dtype=torch.long)
    networks = {}
    if spec.dire_unet is not None:
        networks[f"diffusion UNet (v4 ε, DIRE) x{TILES}"] = (EpsOutput(load_unet(spec.dire_unet).float()), (x, t))
    networks[f"ε network of the default x{TILES}"] = (EpsOutput(load_unet(spec.unet).float()), (x, t))
    if args.eps_unet:
        networks[f"{Path(args.eps_unet).parent.parent.name} ε network x{TILES}"] = (EpsOutput(load_unet(args.eps_unet).float()), (x, t))
    networks[f"student (image+ε) x{TILES}"] = (LogitOutput(load_student(spec.student)), (torch.cat([x, x], 1),))
    networks[f"image-only student x{TILES}"] = (LogitOutput(load_student(fast.student)), (x,))
    network_table(networks, unit, args.repeats, args.compile)
    with tempfile.TemporaryDirectory() as tmp:
        detect_table(photo_jpeg(Path(tmp)), unit, args.repeats)
    if importlib.util.find_spec("onnxruntime"):
        ab_table()
    if args.adm:
        adm_table(unit)
    if args.app:
        app_table(max(5, args.repeats // 2), args.users)
    print(f"\nunit again (drift check): {reference_ms(args.repeats):.1f} ms")


if __name__ == "__main__":
    main()
