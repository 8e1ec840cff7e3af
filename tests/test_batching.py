"""BatchingDetector: concurrent callers share model calls yet each gets exactly its own results."""

from __future__ import annotations

import threading

import pytest
from conftest import encode, make_photo

from detector import Detector
from detector.batching import BatchingDetector
from detector.verdict import VerdictPolicy


@pytest.fixture
def files(tmp_path) -> list[str]:
    paths = []
    for i in range(6):
        path = tmp_path / f"img{i}.png"
        path.write_bytes(encode(make_photo(80 + 8 * i, 64, seed=i)))
        paths.append(str(path))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    return paths + [str(bad)]


def _run_together(batcher: BatchingDetector, requests: list[tuple[list[str], VerdictPolicy]]) -> list:
    """Start every request at once (a barrier), as users of a web page would."""
    barrier, answers = threading.Barrier(len(requests)), [None] * len(requests)

    def call(i: int) -> None:
        barrier.wait()
        answers[i] = batcher.detect(requests[i][0], requests[i][1])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return answers


def test_concurrent_requests_share_calls_and_keep_their_own_results(tiny_weights, files):
    detector = Detector.from_pretrained(str(tiny_weights))
    batcher = BatchingDetector(detector, max_images=32, max_wait_s=0.05)
    low, high = VerdictPolicy(0.05, 0.0), VerdictPolicy(0.95, 0.0)
    requests = [([files[0], files[6]], low), ([files[1]], high), ([files[2], files[3]], low), ([files[4]], high)]
    answers = _run_together(batcher, requests)

    assert sum(batcher.batches) == len(requests) and len(batcher.batches) < len(requests)  # merged
    alone = {path: r for path, r in zip(files, detector.detect(files))}
    for (paths, policy), results in zip(requests, answers):
        assert [r.source for r in results] == paths
        for path, result in zip(paths, results):
            if path == files[6]:  # the bad file: an error of its own, its neighbour still scored
                assert result.verdict == "error" and result.p_fake is None
                continue
            assert result.p_fake == pytest.approx(alone[path].p_fake, abs=1e-5)
            assert result.verdict == policy.verdict(result.p_fake) and result.label == policy.label(result.p_fake)


def test_batches_respect_max_images_and_the_file_limit(tiny_weights, files):
    batcher = BatchingDetector(Detector.from_pretrained(str(tiny_weights)), max_images=2, max_wait_s=0.05)
    answers = _run_together(batcher, [([f], None) for f in files[:5]])
    assert all(len(a) == 1 and a[0].ok for a in answers) and max(batcher.batches) <= 2

    limited = batcher.detect([files[0]], max_file_bytes=10)
    assert limited[0].verdict == "error" and "the limit is 10 bytes per file" in limited[0].error


def test_a_failing_model_call_reaches_every_caller(tiny_weights, files, monkeypatch):
    detector = Detector.from_pretrained(str(tiny_weights))
    monkeypatch.setattr(detector, "detect", lambda *a, **k: (_ for _ in ()).throw(MemoryError("out of memory")))
    batcher = BatchingDetector(detector, max_wait_s=0.0)
    with pytest.raises(MemoryError, match="out of memory"):
        batcher.detect([files[0]])
    with pytest.raises(MemoryError):  # the worker survived the failure and serves the next request
        batcher.detect([files[1]])


def test_the_model_thread_runs_jobs_on_one_thread_and_survives_a_fork():
    import os
    import signal

    from detector.serving import ModelThread

    model_thread = ModelThread()
    idents = {model_thread.run(threading.get_ident) for _ in range(3)}
    assert idents == {model_thread.ident} and model_thread.ident != threading.get_ident()
    assert model_thread.run(lambda: model_thread.run(lambda: 7)) == 7  # nested: no deadlock
    with pytest.raises(ZeroDivisionError):
        model_thread.run(lambda: 1 / 0)

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's model thread does not exist here
        signal.alarm(30)  # a deadlock ends the child (and fails the test) instead of hanging it
        try:
            os.write(write, str(model_thread.run(lambda: 6 * 7)).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 16) == b"42" and status == 0
