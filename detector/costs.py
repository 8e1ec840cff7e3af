"""What a model costs here, measured: one timing helper (``median_ms``) for the app's estimates, its Cost
tab and bench/, the per-pipeline table (``measure_costs``), and ``CostModel``, a rolling estimate of
seconds per UNet call that every real run updates, so estimates follow the load the server is under
rather than one cold measurement."""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable

import torch


def median_ms(fn: Callable[[], object], repeats: int = 3, warmup: int = 1, sync: Callable[[], None] | None = None,
              stop_after_s: float | None = None) -> float:
    """Median wall time of ``fn()`` in ms over ``repeats`` runs after ``warmup`` untimed ones (``sync`` waits
    for the device). ``stop_after_s``: stop early once one run took longer (a slow call is timed once)."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        fn()
        if sync:
            sync()
        samples.append((time.perf_counter() - start) * 1e3)
        if stop_after_s is not None and samples[-1] > stop_after_s * 1e3:
            break
    return statistics.median(samples)


def unet_call_ms(detector, repeats: int = 1, network: str = "eps") -> float:
    """One UNet call on one input at the model's input size on this device (0 for an image-only model);
    ``network="dire"``: the DIRE map's UNet (another one when the ε network is distilled)."""
    if detector.unet is None:
        return 0.0
    extractor = detector.dire_extractor if network == "dire" else detector.extractor
    size = detector.config.image_size
    x = torch.zeros(1, 3, size, size, device=detector.device)
    t = torch.zeros(1, dtype=torch.long, device=detector.device)
    with torch.inference_mode():
        return median_ms(lambda: extractor.eps_fn(x, t), repeats, sync=detector.sync, stop_after_s=1.0)


def measure_costs(detector, repeats: int = 3) -> dict:
    """Measured ms per UNet call and per student pass on this hardware, at the model's input size (one
    tile for a tiled model), batch 1, and the implied per-image cost of DIRE, DistilDIRE (one call per
    input) and image-only (no call), counting as many inputs per image as the config allows."""
    config = detector.config
    size, inputs = config.image_size, config.inputs_per_image
    timings = {}
    if detector.unet is not None:
        timings["unet_call_ms"] = unet_call_ms(detector, repeats)
        if detector.dire_extractor is not detector.extractor:
            timings["dire_unet_call_ms"] = unet_call_ms(detector, repeats, "dire")
    x_student = torch.zeros(1, config.in_channels, size, size, device=detector.device, dtype=detector.student_dtype)
    with torch.inference_mode():
        timings["student_ms"] = median_ms(lambda: detector.student_logits(x_student), repeats, sync=detector.sync)
    unet_ms, student_ms = timings.get("unet_call_ms"), inputs * timings["student_ms"]
    dire_ms = timings.get("dire_unet_call_ms", unet_ms)
    calls = 2 * config.ddim_steps
    return {
        "device": str(detector.device),
        "runtime": detector.runtimes,
        "image_size": size,
        "inputs_per_image": inputs,
        **{k: round(v, 2) for k, v in timings.items()},
        "pipelines": {
            f"DIRE (DDIM-{config.ddim_steps} inversion + reconstruction)": {
                "unet_calls": calls, "ms": round(calls * dire_ms + timings["student_ms"], 1) if unet_ms else None},
            "DistilDIRE (ε at t=0)": {"unet_calls": inputs,
                                       "ms": round(inputs * unet_ms + student_ms, 1) if unet_ms else None},
            "image-only student": {"unet_calls": 0, "ms": round(student_ms, 1)},
        },
    }


class CostModel:
    """Seconds per UNet call: first measured once, then the median of the last ``window`` rates seen in
    real runs (``observe``), kept apart for the ε network and the DIRE map's UNet when they differ (a
    distilled ε network is several times cheaper per call). Thread-safe; ``estimate_seconds`` counts the
    config's calls."""

    def __init__(self, detector, window: int = 16):
        self.detector = detector
        self._rates: dict[str, deque[float]] = {"eps": deque(maxlen=window), "dire": deque(maxlen=window)}
        self._lock = threading.Lock()

    def _network(self, kind: str) -> str:
        """Which rate a kind of call uses: one network serving both shares one rate."""
        separate = getattr(self.detector, "dire_extractor", None) is not getattr(self.detector, "extractor", None)
        return "dire" if kind == "dire" and separate else "eps"

    def observe(self, seconds: float, unet_calls: int, kind: str = "eps") -> None:
        """A real run took ``seconds`` for ``unet_calls`` calls of the ``kind`` ("eps" or "dire") network
        (ignored when it made none)."""
        if unet_calls > 0 and seconds > 0:
            with self._lock:
                self._rates[self._network(kind)].append(seconds / unet_calls)

    def seconds_per_call(self, kind: str = "eps") -> float:
        network = self._network(kind)
        with self._lock:
            if self._rates[network]:
                return statistics.median(self._rates[network])
        rate = unet_call_ms(self.detector, network=network) / 1e3  # no run yet: measure one call (outside the lock)
        self.observe(rate, 1, network)
        return rate

    def unet_calls(self, n_images: int, with_dire: bool = False) -> int:
        config = self.detector.config
        return n_images * (config.unet_calls_per_image + (config.dire_unet_calls if with_dire else 0))

    def estimate_seconds(self, n_images: int, with_dire: bool = False) -> float:
        """Expected UNet time for ``n_images`` (an upper bound for a tiled model: ≤ max_tiles calls)."""
        config = self.detector.config
        eps_calls, dire_calls = n_images * config.unet_calls_per_image, n_images * config.dire_unet_calls * with_dire
        return ((eps_calls * self.seconds_per_call() if eps_calls else 0.0)
                + (dire_calls * self.seconds_per_call("dire") if dire_calls else 0.0))
