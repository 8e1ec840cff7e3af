"""Many callers, one model call: a small batching queue over ``Detector.detect``.

A web server answers each user in a thread of its own; scoring each request alone runs the model once
per request. ``BatchingDetector`` gathers the requests that arrive while the model is busy (or within
``max_wait_s`` of the first) and scores them in one ``detect`` call, then hands every caller its own
results with its own verdict policy applied. On CPU this mostly saves per-call overhead; on a GPU it
turns many batch-1 calls into one large batch.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from .pipeline import Detector
from .preprocess import ImageInput
from .result import DetectionResult
from .verdict import VerdictPolicy


def _direct(fn: Callable, *args, **kwargs):
    return fn(*args, **kwargs)


@dataclass
class _Request:
    inputs: list[ImageInput]
    policy: VerdictPolicy
    max_file_bytes: int | None
    future: Future = field(default_factory=Future)


class BatchingDetector:
    """Thread-safe ``detect`` (no DIRE) that merges concurrent calls into batches of at most
    ``max_images`` images; a request is never split, so a request larger than that runs alone."""

    def __init__(self, detector: Detector, max_images: int | None = None, max_wait_s: float = 0.005,
                 runner: Callable | None = None):
        # CPU: a larger batch is not faster per image, so small batches let early requests finish early;
        # GPU: large batches are nearly free
        self.max_images = max_images or (64 if detector.device.type == "cuda" else 4)
        self.detector, self.max_wait_s = detector, max_wait_s
        self.runner = runner or _direct  # e.g. ``serving.ModelThread().run``: where the model call executes
        self._pending: list[_Request] = []
        self._lock = threading.Condition()
        self._worker: threading.Thread | None = None
        self.batches: deque[int] = deque(maxlen=1000)  # requests per recent model call (benchmarks, tests)

    def detect(self, inputs: Sequence[ImageInput], policy: VerdictPolicy | None = None,
               max_file_bytes: int | None = None) -> list[DetectionResult]:
        """One result per input, in order, as ``Detector.detect(inputs, policy=…, max_file_bytes=…)``
        gives them (timings are those of the shared call, shared per input)."""
        request = _Request(list(inputs), policy or self.detector.policy, max_file_bytes)
        with self._lock:
            self._pending.append(request)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._serve, name="batching-detector", daemon=True)
                self._worker.start()
            self._lock.notify()
        return request.future.result()

    def _take(self) -> list[_Request]:
        """The oldest pending requests that fit in one batch; [] after 30 s without any."""
        with self._lock:
            if not self._pending and not self._lock.wait_for(lambda: self._pending, timeout=30.0):
                return []
        time.sleep(self.max_wait_s)  # let requests that arrive together share the call
        with self._lock:  # the oldest request, and the next ones with the same file limit that fit
            batch = [self._pending.pop(0)]
            size = len(batch[0].inputs)
            for request in list(self._pending):
                if request.max_file_bytes == batch[0].max_file_bytes and size + len(request.inputs) <= self.max_images:
                    self._pending.remove(request)
                    batch.append(request)
                    size += len(request.inputs)
            return batch

    def _serve(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                with self._lock:
                    if not self._pending:
                        self._worker = None
                        return
                continue
            self.batches.append(len(batch))
            try:
                results = self.runner(self.detector.detect, [item for r in batch for item in r.inputs],
                                      max_file_bytes=batch[0].max_file_bytes)
            except BaseException as exc:  # e.g. out of memory: every waiting caller hears of it
                for request in batch:
                    request.future.set_exception(exc)
                continue
            offset = 0
            for request in batch:
                own = results[offset : offset + len(request.inputs)]
                offset += len(request.inputs)
                request.future.set_result([result.with_policy(request.policy) for result in own])
