"""Serving many users from one process: ``Server.analyze`` takes one request (files, model, threshold,
options) and returns everything a page shows — results, report, evidence pictures, the score plot —
while it owns what a web server needs around the model: one model thread, the loaded models, the light
and heavy lanes, the DIRE-on-CPU limit, progress with time estimates, and the report files.

Any front end (app.py is Gradio's) calls ``analyze`` and formats; a whole-request problem raises
``RequestError`` with a sentence for the person who sent it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from .batching import BatchingDetector
from .card import verdict_caveat
from .config import ModelConfig
from .costs import CostModel, measure_costs
from .pipeline import Detector
from .registry import (
    AUTO,
    REGISTRY,
    WeightsNotFoundError,
    WeightsSpec,
    choose_auto,
    describe,
    download,
    is_local,
    model_config,
    resolve_weights,
)
from .report import TABLE_HEADERS, VERDICT_WORDS, build_report, disagreement_note, robustness, table_row
from .result import DetectionResult
from .verdict import VerdictPolicy
from .visualize import ScorePlot, evidence_sheet, tile_heatmap

__all__ = [
    "TABLE_HEADERS", "Analysis", "Limits", "ModelThread", "RequestCancelled", "RequestError", "Server", "default_model",
]

#: progress(fraction in [0, 1], text)
Progress = Callable[[float, str], None]


def _quiet(fraction: float, text: str = "") -> None:
    return None


class RequestError(Exception):
    """A problem with a whole request (no files, a model that cannot load, DIRE too slow here); the
    message is meant for the person who sent it."""


class RequestCancelled(RequestError):
    """The person cancelled the request; the server stopped its work at the next image or UNet call."""

    def __init__(self) -> None:
        super().__init__("Cancelled: the server stopped this request's work.")


class LoadAwareThreads:
    """How many intra-op threads the next model job should use: every core while the machine is otherwise
    idle, one fewer per core that other processes keep busy (at least one).

    PyTorch splits each operation over its threads and waits for the slowest: with one of 2 cores taken
    by another process, 2 threads made a 1024×768 image take 1177 ms against 435 ms with 1 thread (and
    254 ms with 2 threads on a quiet machine). The load of other processes is read from CPU-time counters
    (the system's minus this process's) over the time since the last decision, at most every ``every_s``."""

    def __init__(self, cores: int | None = None, every_s: float = 0.5, sample: Callable | None = None):
        self.cores = max(1, cores or os.cpu_count() or 1)
        self.every_s = every_s
        self._sample = sample or _cpu_sample
        self._last = self._sample()
        self.threads = self.cores

    def decide(self) -> int:
        now = self._sample()
        wall = now[0] - self._last[0]
        if wall >= self.every_s:
            others = max(0.0, (now[1] - self._last[1]) - (now[2] - self._last[2])) / wall  # busy cores not ours
            self.threads = max(1, self.cores - int(others + 0.5))
            self._last = now
        return self.threads


def _cpu_sample() -> tuple[float, float, float]:
    """(monotonic time, CPU seconds the whole machine spent busy, CPU seconds this process spent)."""
    import psutil

    system, own = psutil.cpu_times(), psutil.Process().cpu_times()
    busy = system.user + system.nice + system.system + getattr(system, "irq", 0.0) + getattr(system, "softirq", 0.0)
    return time.monotonic(), busy, own.user + own.system


class ModelThread:
    """One OS thread for every model call of a server, with a deliberate thread count.

    PyTorch's CPU thread pool belongs to the thread that calls it: model calls made from many threads
    (a web server's request threads) each bring a pool of their own, and the pools fight over the cores.
    Measured on 2 cores: DIRE for 4 images 5.1 s on the thread that loaded the model, 9.0 s on a new
    thread. ``run`` executes jobs in arrival order on one thread, so a long request submitted a piece at
    a time lets short ones run in between its pieces. Before each job the pool is sized by ``threads``:
    a fixed count, or ``LoadAwareThreads`` (the default; $DISTILDIRE_THREADS pins a count)."""

    def __init__(self, threads: int | LoadAwareThreads | None = None) -> None:
        pinned = os.environ.get("DISTILDIRE_THREADS")
        self.threads = threads if threads is not None else (int(pinned) if pinned else LoadAwareThreads())
        self.used: deque[int] = deque(maxlen=1000)  # threads each recent job ran with (benchmarks, tests)
        self._start()

    def _start(self) -> None:
        self._pid, self.ident = os.getpid(), None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="model", initializer=self._remember)

    def _remember(self) -> None:
        self.ident = threading.get_ident()

    def run(self, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)`` on the model thread (directly when already on it); its result or error."""
        if os.getpid() != self._pid:  # a forked child (e.g. ZeroGPU's worker) has no copy of the thread
            self._start()
        if threading.get_ident() == self.ident:
            return fn(*args, **kwargs)
        return self._executor.submit(self._sized, fn, *args, **kwargs).result()

    def _sized(self, fn: Callable, *args, **kwargs):
        import torch

        wanted = self.threads if isinstance(self.threads, int) else self.threads.decide()
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)
        self.used.append(wanted)
        return fn(*args, **kwargs)


@dataclass(frozen=True)
class Limits:
    """What one request may ask of this server."""

    max_files: int = 16
    max_file_bytes: int = 20_000_000  # per file: a larger one gets an error row, the others are still scored
    light_max_files: int = 4  # a request with more files, DIRE or robustness takes the heavy lane
    #: DIRE on a CPU-only server is refused when its estimate (UNet calls × measured cost per call) is above this
    dire_cpu_limit_s: float = float(os.environ.get("DISTILDIRE_DIRE_CPU_LIMIT_S", "120"))
    progress_every_s: float = 0.25  # at most four progress messages a second (each costs the server ~25 ms)
    report_ttl_s: float = 900


@dataclass
class Loaded:
    """A model this server has loaded: its files and card, the detector, and what serves it."""

    spec: WeightsSpec
    detector: Detector
    batcher: BatchingDetector
    costs: CostModel


@dataclass
class Analysis:
    """One request's answer: results in input order, the JSON report (and its file), the evidence
    pictures as (file, caption), the score plot file, and notices for the person (e.g. no DIRE here)."""

    results: list[DetectionResult]
    report: dict
    report_path: str
    pictures: list[tuple[str, str]]
    plot_path: str
    notices: list[str] = field(default_factory=list)
    caveat: str = ""  # what a low score is worth at this threshold, from the model card's numbers

    @property
    def table(self) -> list[list]:
        """The results table's rows (``TABLE_HEADERS``), from the report: what the CLI prints too."""
        return [table_row(entry) for entry in self.report["files"]]


def default_model(weights: str = AUTO) -> tuple[str, str]:
    """The model a server starts with, and why: ``weights`` as the operator gave it, or for ``auto`` the
    official ImageNet model where it runs well (may download it now, with progress in the log), else bundled."""
    if weights == AUTO:
        return choose_auto(fetch=True)
    return weights, "chosen by the operator (--weights)"


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class Server:
    """Everything between a front end and ``Detector`` for one process (see the module docstring)."""

    def __init__(self, limits: Limits | None = None, report_dir: str | Path | None = None):
        self.limits = limits or Limits()
        self.model_thread = ModelThread()
        self.heavy_lane = threading.Lock()  # one heavy request at a time; light ones run beside it, never behind
        # a folder of this server's own: pruning it never touches another server's files
        self.report_dir = Path(report_dir or tempfile.mkdtemp(prefix="distildire-reports-"))
        self._loading = threading.Lock()
        self._loaded: dict[str, Loaded] = {}
        self._plots = lru_cache(maxsize=16)(self._plot)
        self._running: dict[str, threading.Event] = {}  # session → the cancel flag of its current request
        self.events: deque[tuple[float, str, str, str]] = deque(maxlen=2000)  # (time, request, lane, start|done)

    # ------------------------------------------------------------------ models
    def load(self, name: str, progress: Progress = _quiet) -> Loaded:
        """The model ``name`` (registry name or weights folder), loaded once per server; a registry model's
        missing files are downloaded first, with progress."""
        with self._loading:
            if name in self._loaded:
                return self._loaded[name]
            self._ensure_local(name, progress)
            progress(0.02, "loading model")
            try:
                spec = resolve_weights(name)
                detector = self.model_thread.run(Detector.from_spec, spec)
            except (WeightsNotFoundError, FileNotFoundError, ValueError) as exc:
                raise RequestError(f"Model '{name}' cannot be loaded: {exc}") from None
            loaded = Loaded(spec, detector, BatchingDetector(detector, runner=self.model_thread.run), CostModel(detector))
            self._loaded[name] = loaded
            return loaded

    @staticmethod
    def _ensure_local(name: str, progress: Progress) -> None:
        if name not in REGISTRY or is_local(name):
            return
        entry = describe(name)
        progress(0.0, f"downloading {entry.name}'s weights (~{entry.download_mb / 1000:.1f} GB, once per server)")
        try:
            download(name)
        except WeightsNotFoundError as exc:
            raise RequestError(f"Model '{name}' cannot be loaded: {exc}") from None

    def unload(self, name: str | None = None) -> None:
        """Forget a loaded model (all with None), e.g. after its files changed; the next request reloads it."""
        with self._loading:
            for key in [name] if name else list(self._loaded):
                self._loaded.pop(key, None)
        self._plots.cache_clear()

    def costs(self, name: str) -> dict:
        """Measured costs of ``name``'s pipelines on this server (``detector.costs.measure_costs``)."""
        detector = self.load(name).detector
        return self.model_thread.run(measure_costs, detector)

    # ------------------------------------------------------------------ one request
    def cancel(self, session: str) -> bool:
        """Ask ``session``'s running request to stop (at its next image or UNet call); whether one was running."""
        flag = self._running.get(session)
        if flag is not None:
            flag.set()
        return flag is not None

    def analyze(self, paths: list[str], model: str, threshold: float | None = None, with_dire: bool = False,
                with_robustness: bool = False, progress: Progress = _quiet, session: str | None = None) -> Analysis:
        """Score ``paths`` (uploaded files; reports name them by file name, never by server path) with
        ``model`` at ``threshold`` (default: its card's), optionally with the teacher's DIRE map and
        robustness re-checks. Bad files get error rows, files beyond ``limits.max_files`` a "not scored"
        row; whole-request problems raise ``RequestError``. ``cancel(session)`` stops the request's work
        (``RequestCancelled``)."""
        if not paths:
            raise RequestError("Add at least one image: drop files, browse, or paste one.")
        flag = threading.Event()
        key = session or uuid.uuid4().hex
        self._running[key] = flag  # a newer request of the session replaces it; the older keeps its own flag
        heavy = with_dire or with_robustness or len(paths) > self.limits.light_max_files
        lane = "heavy" if heavy else "light"
        request = uuid.uuid4().hex[:8]
        try:
            if heavy:
                with self._heavy(progress, flag):
                    self.events.append((time.perf_counter(), request, lane, "start"))
                    analysis = self._analyze(paths, model, threshold, with_dire, with_robustness, progress, flag)
            else:
                self.events.append((time.perf_counter(), request, lane, "start"))
                analysis = self._analyze(paths, model, threshold, False, False, progress, flag)
            self.events.append((time.perf_counter(), request, lane, "done"))
            return analysis
        finally:
            if self._running.get(key) is flag:
                del self._running[key]

    @contextmanager
    def _heavy(self, progress: Progress, cancelled: threading.Event):
        """One heavy request at a time, saying so while waiting (and giving up when cancelled)."""
        if not self.heavy_lane.acquire(blocking=False):
            progress(0.0, "waiting for the request ahead of this one (DIRE / robustness / many files)")
            while not self.heavy_lane.acquire(timeout=0.2):
                if cancelled.is_set():
                    raise RequestCancelled()
        try:
            yield
        finally:
            self.heavy_lane.release()

    def _analyze(self, paths: list[str], model: str, threshold: float | None, with_dire: bool,
                 with_robustness: bool, progress: Progress, cancelled: threading.Event) -> Analysis:
        loaded = self.load(model, progress)
        detector = loaded.detector
        policy = detector.policy.with_threshold(threshold)  # one threshold decides every verdict below
        notices = []
        extra, paths = paths[self.limits.max_files :], paths[: self.limits.max_files]
        if extra:
            notices.append(f"At most {self.limits.max_files} images per request: the first {self.limits.max_files} "
                           f"were scored; {len(extra)} more were not (send them in another request).")
        dire = with_dire and detector.uses_eps
        if with_dire and not dire:
            notices.append("This model reads no diffusion UNet, so it has no DIRE map; showing its input only.")
        if dire:
            results = self._score_with_dire(loaded, paths, policy, progress, cancelled, notices)
        else:
            results = self._score(loaded, paths, policy, progress, cancelled)
        results = [r.renamed(Path(p).name) for p, r in zip(paths, results)]  # never echo temporary paths
        robust = None
        if with_robustness:
            robust = []
            for i, (path, result) in enumerate(zip(paths, results)):  # image by image: others run in between
                self._check(cancelled)
                progress(0.85 + 0.1 * i / len(paths), f"robustness re-checks: image {i + 1} of {len(paths)}")
                robust.append(self.model_thread.run(robustness, detector, [path], [result], policy)[0])
        results += [DetectionResult.failed(Path(p).name, f"not scored: at most {self.limits.max_files} images per "
                                                         "request") for p in extra]
        report = build_report(detector, paths + extra, results, robust, policy)
        pictures = self._pictures(results, policy.threshold)
        plot = self._plots(model, policy).render([(r.source, r.p_fake) for r in results])
        progress(1.0, "done")
        caveat = verdict_caveat(loaded.spec.card, loaded.spec.variant, policy.threshold)
        for entry in report["files"]:  # where the file's claim and the pixels disagree, say so plainly
            note = disagreement_note(entry["verdict"], entry.get("provenance") or {})
            if note:
                notices.append(f"{entry['file']}: {note}.")
        return Analysis(results, report, self._write_report(report), pictures,
                        self._write_picture(plot, photo=False, stem="scores"), notices, caveat)

    @staticmethod
    def _check(cancelled: threading.Event) -> None:
        if cancelled.is_set():
            raise RequestCancelled()

    def _score(self, loaded: Loaded, paths: list[str], policy: VerdictPolicy, progress: Progress,
               cancelled: threading.Event) -> list[DetectionResult]:
        """Light requests share model calls with other users' (the batcher); larger ones go in pieces so
        other requests run in between."""
        estimate = self.model_thread.run(loaded.costs.estimate_seconds, len(paths))  # may time one UNet call
        progress(0.1, "scoring" + (f", about {duration(estimate)}" if estimate >= 2 else ""))
        step = self.limits.light_max_files
        if len(paths) <= step:
            results = loaded.batcher.detect(paths, policy, self.limits.max_file_bytes)
        else:
            results = []
            for offset in range(0, len(paths), step):
                self._check(cancelled)
                results += self.model_thread.run(loaded.detector.detect, paths[offset : offset + step], policy=policy,
                                                 max_file_bytes=self.limits.max_file_bytes)
                progress(0.1 + 0.75 * min(1.0, (offset + step) / len(paths)), f"scored {min(len(paths), offset + step)} "
                         f"of {len(paths)} images")
        self._observe(loaded, results)
        return results

    @staticmethod
    def _observe(loaded: Loaded, results: list[DetectionResult]) -> None:
        """Feed the cost model what the UNet itself took (never the time spent waiting for other users)."""
        dire_calls = [loaded.detector.config.dire_unet_calls if r.dire is not None else 0 for r in results]
        loaded.costs.observe(sum(r.timings_ms.get("unet_eps", 0.0) for r in results) / 1e3,
                             sum(r.unet_calls for r in results) - sum(dire_calls))
        loaded.costs.observe(sum(r.timings_ms.get("dire", 0.0) for r in results) / 1e3, sum(dire_calls), "dire")

    def _score_with_dire(self, loaded: Loaded, paths: list[str], policy: VerdictPolicy, progress: Progress,
                         cancelled: threading.Event, notices: list[str]) -> list[DetectionResult]:
        """One image at a time, the progress bar moving with every UNet call and the time left re-estimated
        from the calls done so far. On a CPU the limit holds for what actually runs: refused up front when
        the estimate is over it, and images whose DIRE would end past it are scored without DIRE."""
        detector, costs = loaded.detector, loaded.costs
        per_image = costs.unet_calls(1, with_dire=True)
        estimate = self.model_thread.run(costs.estimate_seconds, len(paths), True)
        limit = self.limits.dire_cpu_limit_s
        if detector.device.type == "cpu" and estimate > limit:
            seconds = estimate / len(paths) / per_image
            fits = int(limit // (estimate / len(paths)))
            raise RequestError(
                f"DIRE with this model on this server's CPU would take about {duration(estimate)} for {len(paths)} "
                f"image(s) ({per_image} UNet calls of {seconds:.2f} s each per image); the limit here is "
                f"{duration(limit)}. Untick DIRE (the verdict does not need it)"
                + (f", send at most {fits} image(s)" if fits else "") + ", or run on a GPU.")
        total, done, started = per_image * len(paths), {"calls": 0, "shown": 0.0}, time.perf_counter()
        results = []
        for i, path in enumerate(paths):
            self._check(cancelled)
            elapsed = time.perf_counter() - started
            if i and detector.device.type == "cpu" and elapsed + elapsed / i > limit:  # the next one would end late
                notices.append(f"DIRE stopped after {i} of {len(paths)} images at this server's {duration(limit)} "
                               f"limit; the other images were scored without it.")
                rest = self._score(loaded, paths[i:], policy, progress, cancelled)
                return results + rest

            def tick(n: int, i: int = i) -> None:
                if cancelled.is_set():  # between UNet calls: the next request starts within one call
                    raise RequestCancelled()
                done["calls"] += n  # one call per input it scored
                now = time.perf_counter()
                if now - done["shown"] < self.limits.progress_every_s and done["calls"] < total:
                    return  # each update is a message to the browser: a few per second are enough
                done["shown"] = now
                rate = (now - started) / max(1, done["calls"])
                progress(0.05 + 0.8 * min(1.0, done["calls"] / total),
                         f"DIRE for image {i + 1} of {len(paths)}: UNet call {done['calls']} of {total}, "
                         f"about {duration(rate * (total - done['calls']))} left")

            progress(0.05 + 0.8 * i / len(paths),
                     f"DIRE for image {i + 1} of {len(paths)}: about {duration(estimate * (len(paths) - i) / len(paths))} left")
            results += self.model_thread.run(detector.detect, [path], with_dire=True, policy=policy,
                                             max_file_bytes=self.limits.max_file_bytes, on_unet_calls=tick)
        self._observe(loaded, results)
        return results

    # ------------------------------------------------------------------ pictures and files
    def _plot(self, model: str, policy: VerdictPolicy) -> ScorePlot:
        spec = self.load(model).spec
        reference = spec.card.get("reference_histograms", {})
        histograms = reference.get(spec.variant) if spec.variant else None
        return ScorePlot({"edges": reference["edges"], **histograms} if histograms else None, policy)

    def _pictures(self, results: list[DetectionResult], threshold: float) -> list[tuple[str, str]]:
        pictures = []
        for result in results:
            if not result.ok:
                continue
            label = f"{result.source}: {VERDICT_WORDS[result.verdict].lower()} (p_fake = {result.p_fake:.3f})"
            if result.provenance is not None:  # the file's own claim, said to be one
                label += f"; provenance (declared by the file): {result.provenance.summary}"
            stem = Path(result.source).stem
            if result.grid is not None:  # the score of each tile the model read
                pictures.append((self._write_picture(tile_heatmap(result, threshold=threshold), True, f"{stem}-tiles"),
                                 f"{label} — p(fake) per tile"))
            pictures.append((self._write_picture(evidence_sheet(result), False, f"{stem}-evidence"),
                             f"{label} — what the model read"))
        return pictures

    def _prune(self) -> None:
        """Delete this server's reports and pictures older than the limits' TTL (front ends serve copies)."""
        now = time.time()
        for old in self.report_dir.glob("*"):
            try:
                if now - old.stat().st_mtime > self.limits.report_ttl_s:
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
            except OSError:  # another request removed it first
                pass

    def _new_file(self, name: str) -> Path:
        self.report_dir.mkdir(parents=True, exist_ok=True)
        self._prune()
        folder = self.report_dir / uuid.uuid4().hex[:12]  # the file keeps a readable name, in a folder of its own
        folder.mkdir()
        return folder / name

    def _write_report(self, report: dict) -> str:
        path = self._new_file("report.json")
        path.write_text(json.dumps(report, indent=2))
        return str(path)

    def _write_picture(self, pixels: np.ndarray, photo: bool, stem: str) -> str:
        """JPEG (q90, ~3 ms) for a picture drawn over a photo, PNG (lossless, cheap for flat panels) for the
        labelled sheet and the plot. Encoding the heat map as PNG cost ~100 ms a request."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80] or "image"
        path = self._new_file(f"{safe}.{'jpg' if photo else 'png'}")
        Image.fromarray(pixels).save(path, **({"quality": 90} if photo else {"compress_level": 1}))
        return str(path)

    def config(self, name: str) -> ModelConfig | None:
        """A model's config without loading it (None when it cannot be read)."""
        try:
            return model_config(name)
        except (WeightsNotFoundError, FileNotFoundError, ValueError):
            return None
