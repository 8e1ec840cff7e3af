"""Upload → verdict latency of the web demo, measured like a user's client sees it.

Starts ``python app.py`` on a free localhost port, calls ``/detect`` through gradio_client for one
image and for a batch of 8 (repeated), and prints p50/p95 in ms and the server's peak RSS. Not a test.

    python bench/app_latency.py [--weights bundled] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_images(folder: Path, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        yy, xx = np.mgrid[0:480, 0:640]
        pixels = np.stack([xx / 640, yy / 480, 0.5 + 0.5 * np.sin(xx / 30 + i)], -1) * 220 + rng.normal(0, 6, (480, 640, 3))
        path = folder / f"upload_{i}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(str(path))
    return paths


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="bundled")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "MPLBACKEND": "Agg"}
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--weights", args.weights], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(240):
            try:
                client = Client(url, verbose=False)
                break
            except Exception:
                time.sleep(0.5)
        else:
            raise SystemExit("the app did not start")
        process = psutil.Process(server.pid)
        with tempfile.TemporaryDirectory() as tmp:
            images = make_images(Path(tmp), 8)
            print(f"app: {args.weights}; {os.cpu_count()} CPUs; images 640x480 JPEG; {args.repeats} requests each")
            for label, batch in (("1 image", images[:1]), ("8 images", images)):
                files = [handle_file(p) for p in batch]
                client.predict(files, None, args.weights, 0.5, False, False, api_name="/detect")  # warm-up
                samples = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    table, *_ = client.predict(files, None, args.weights, 0.5, False, False, api_name="/detect")
                    samples.append((time.perf_counter() - start) * 1e3)
                    peak = max(peak, process.memory_info().rss)
                    assert len(table["data"]) == len(batch)
                print(f"{label:>9}: p50 {statistics.median(samples):7.1f} ms   p95 {percentile(samples, 95):7.1f} ms   "
                      f"({statistics.median(samples) / len(batch):.1f} ms/image at p50)")
        print(f"server peak RSS (sampled after each request): {peak / 2**20:.0f} MiB")
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
