"""Upload → verdict latency of the web demo, measured like a user's client sees it.

Starts ``python app.py`` on a free localhost port and, through gradio_client: one image and a batch of
8 (repeated; p50/p95 in ms); a burst of ``--users`` clients sending one image each at once (failures,
p50/p95, and the burst's wall time against the single-request median); single images sent one after
another while a 16-image DIRE + robustness request runs; how long the next user waits after such a
request is cancelled; one 8000×8000 JPEG (the server's peak RSS above its idle RSS, sampled every
20 ms). ``--busy-core`` keeps one core busy with another process throughout, as on a shared Space.
Not a test.

    python -m bench.app_latency [--weights bundled] [--repeats 20] [--users 20] [--busy-core]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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


def _payload(paths: list[str]) -> list[dict]:
    from gradio_client import handle_file

    return [{"image": handle_file(p), "caption": None} for p in paths]


class PeakRSS:
    """The process's peak resident memory while the block runs, sampled every 20 ms."""

    def __init__(self, process: psutil.Process):
        self.process, self.peak, self._stop = process, 0, threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self):
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()


@contextlib.contextmanager
def running_app(weights: str, busy_core: bool = False, env: dict | None = None):
    """``python app.py`` on a free port (optionally with another process spinning one core); yields
    (url, server process, a connected client)."""
    from gradio_client import Client

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy_core else None
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "MPLBACKEND": "Agg", **(env or {})}
    server = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--weights", weights], cwd=ROOT,
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        yield url, psutil.Process(server.pid), client
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
        if busy:
            busy.kill()


def call(c, weights: str, paths: list[str]) -> list:
    table, *_ = c.predict(_payload(paths), weights, 0.5, False, False, api_name="/detect")
    assert len(table["data"]) == len(paths)
    return table["data"]


def cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU time of a process and its threads so far."""
    times = process.cpu_times()
    return times.user + times.system


def single_and_burst(url: str, client, weights: str, images: list[str], repeats: int, users: int,
                     batches: tuple[int, ...] = (1,), log=print, server: psutil.Process | None = None) -> dict:
    """p50/p95 of requests of each size in ``batches`` (after a warm-up), then ``users`` clients sending one image
    each at once: failures, p50/p95 and the burst's wall time. With ``server``, also the CPU time per image of
    the server process and of this (client) process during the burst: both share the machine here, while a
    hosted page's clients are browsers elsewhere."""
    from gradio_client import Client

    figures = {}
    for size in batches:
        batch = images[:size]
        call(client, weights, batch)  # warm-up
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            call(client, weights, batch)
            samples.append((time.perf_counter() - start) * 1e3)
        figures[f"p50_{size}"], figures[f"p95_{size}"] = statistics.median(samples), percentile(samples, 95)
        log(f"{size} image(s): p50 {figures[f'p50_{size}']:7.1f} ms   p95 {figures[f'p95_{size}']:7.1f} ms   "
            f"({figures[f'p50_{size}'] / size:.1f} ms/image at p50)")
    clients = [Client(url, verbose=False) for _ in range(users)]

    def one_user(c) -> float | None:
        start = time.perf_counter()
        try:
            call(c, weights, images[:1])
        except Exception:
            return None
        return (time.perf_counter() - start) * 1e3

    here = psutil.Process()
    cpu_before = (cpu_seconds(server) if server else 0.0, cpu_seconds(here))
    start = time.perf_counter()
    with ThreadPoolExecutor(users) as pool:
        latencies = list(pool.map(one_user, clients))
    if server:
        figures.update(burst_server_cpu_ms_per_image=(cpu_seconds(server) - cpu_before[0]) * 1e3 / users,
                       burst_client_cpu_ms_per_image=(cpu_seconds(here) - cpu_before[1]) * 1e3 / users)
    ok = [v for v in latencies if v is not None]
    figures.update(burst_ms=(time.perf_counter() - start) * 1e3, failures=users - len(ok),
                   burst_p50=statistics.median(ok) if ok else float("nan"), burst_p95=percentile(ok, 95) if ok else float("nan"))
    log(f"{users} users at once, 1 image each: {figures['failures']} failures; p50 {figures['burst_p50']:.0f} ms, p95 "
        f"{figures['burst_p95']:.0f} ms; burst done in {figures['burst_ms']:.0f} ms = "
        f"{figures['burst_ms'] / figures['p50_1']:.1f}x the single-request median")
    if server:
        log(f"  CPU time per image during the burst: server {figures['burst_server_cpu_ms_per_image']:.0f} ms, "
            f"clients (this process) {figures['burst_client_cpu_ms_per_image']:.0f} ms")
    for c in clients:
        c.close()
    return figures


def latency_figures(weights: str, repeats: int, users: int, busy_core: bool = False, env: dict | None = None) -> dict:
    """One image p50/p95 and the burst of ``users``, on a fresh server (``bench.cpu`` runs it per runtime)."""
    with running_app(weights, busy_core, env) as (url, server, client), tempfile.TemporaryDirectory() as tmp:
        return single_and_burst(url, client, weights, make_images(Path(tmp), 1), repeats, users, log=lambda _: None,
                                server=server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="bundled")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--busy-core", action="store_true", help="keep one core busy with another process")
    args = parser.parse_args()
    from gradio_client import Client

    with running_app(args.weights, args.busy_core) as (url, process, client), tempfile.TemporaryDirectory() as tmp:
        images = make_images(Path(tmp), 8)
        print(f"app: {args.weights}; {os.cpu_count()} CPUs{'; one core kept busy by another process' if args.busy_core else ''}; "
              f"images 640x480 JPEG; {args.repeats} requests each")
        single_and_burst(url, client, args.weights, images, args.repeats, args.users, batches=(1, 8), server=process)

        # finding 6: a heavy request (16 images, DIRE + robustness) must not stall a single-image user
        (Path(tmp) / "heavy").mkdir()
        heavy_images = make_images(Path(tmp) / "heavy", 16)
        with ThreadPoolExecutor(1) as pool:
            start = time.perf_counter()
            heavy = pool.submit(lambda: Client(url, verbose=False).predict(
                _payload(heavy_images), args.weights, 0.5, True, True, api_name="/detect"))
            waits = []
            while not heavy.done():  # one single-image user after another, each 1 s after the last answer
                time.sleep(1.0)
                light_start = time.perf_counter()
                call(client, args.weights, images[:1])
                waits.append((time.perf_counter() - light_start) * 1e3)
            heavy.result()
            heavy_took = time.perf_counter() - start
        print(f"16 images with DIRE + robustness: {heavy_took:.1f} s; {len(waits)} single images sent meanwhile: "
              f"p50 {statistics.median(waits):.0f} ms, max {max(waits):.0f} ms")

        # Cancel: the server stops the heavy request's work, so the next user does not wait for it
        canceller = Client(url, verbose=False)
        job = canceller.submit(_payload(heavy_images), args.weights, 0.5, True, True, api_name="/detect")
        time.sleep(3.0)
        canceller.predict(api_name="/cancel")  # what the page's Cancel button calls
        job.cancel()
        start = time.perf_counter()
        call(client, args.weights, images[:1])
        after_cancel = time.perf_counter() - start
        canceller.close()
        print(f"one image sent right after cancelling that heavy request 3 s in: answered in {after_cancel:.2f} s")

        huge = Path(tmp) / "huge_8000x8000.jpg"
        small = Image.open(images[0]).resize((8000, 8000), Image.BILINEAR)
        small.save(huge, quality=70)
        del small
        idle = process.memory_info().rss
        with PeakRSS(process) as rss:
            start = time.perf_counter()
            call(client, args.weights, [str(huge)])
            took = time.perf_counter() - start
        print(f"one 8000x8000 JPEG ({huge.stat().st_size / 1e6:.1f} MB): {took:.2f} s; server RSS {idle / 2**30:.2f} GiB "
              f"idle, peak {rss.peak / 2**30:.2f} GiB (+{(rss.peak - idle) / 2**30:.2f} GiB)")


if __name__ == "__main__":
    main()
