"""The serving layer as a web server uses it: many files, cancellation that stops the work, the DIRE
time limit on what actually runs, and many users at once (light requests merged, never behind heavy ones)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from conftest import encode, make_photo

from detector.serving import RequestCancelled, Server


@pytest.fixture
def files(tmp_path) -> list[str]:
    paths = []
    for i in range(18):
        path = tmp_path / f"img{i:02d}.png"
        path.write_bytes(encode(make_photo(70 + i, 60, seed=i)))
        paths.append(str(path))
    return paths


@pytest.fixture
def server(tmp_path) -> Server:
    return Server(report_dir=tmp_path / "reports")


def test_too_many_files_scores_the_first_ones_and_names_the_rest(server, tiny_weights, files):
    analysis = server.analyze(files[:17], str(tiny_weights))
    rows = analysis.table
    assert len(rows) == 17 and all(r[1] != "ERROR" for r in rows[:16])
    assert rows[16][0] == "img16.png" and rows[16][1] == "ERROR" and "not scored" in rows[16][5]
    assert any("the first 16 were scored; 1 more were not" in n for n in analysis.notices)


def test_cancel_stops_the_servers_work_between_unet_calls(server, tiny_weights, files):
    calls = []

    def progress(fraction: float, text: str) -> None:
        if "UNet call" in text:
            calls.append(text)
            if len(calls) == 3:
                assert server.cancel("page-1")

    server.load(str(tiny_weights))
    server.limits = replace(server.limits, progress_every_s=0.0)
    with pytest.raises(RequestCancelled):
        server.analyze(files[:3], str(tiny_weights), with_dire=True, progress=progress, session="page-1")
    assert len(calls) == 3  # stopped at the next UNet call, not after 3 × 41 of them
    assert not server.heavy_lane.locked()  # the next heavy request is not kept waiting
    after = server.analyze(files[:1], str(tiny_weights), with_dire=True, session="page-1")  # the page can go on
    assert after.results[0].ok and after.results[0].dire is not None
    assert not server.cancel("page-1")  # nothing running for it now


def test_dire_stops_at_the_cpu_limit_on_what_actually_ran(server, tiny_weights, files, monkeypatch):
    loaded = server.load(str(tiny_weights))
    monkeypatch.setattr(loaded.costs, "estimate_seconds", lambda n, with_dire=False: 0.0)  # the estimate passes ...
    server.limits = replace(server.limits, dire_cpu_limit_s=1e-6)  # ... but the first image takes longer
    analysis = server.analyze(files[:3], str(tiny_weights), with_dire=True)
    with_dire = [r.dire is not None for r in analysis.results]
    assert with_dire == [True, False, False] and all(r.ok for r in analysis.results)
    assert any("DIRE stopped after 1 of 3 images" in n for n in analysis.notices)


def test_a_waiting_heavy_request_can_be_cancelled(server, tiny_weights, files):
    server.load(str(tiny_weights))
    outcome = {}

    def waiting() -> None:
        try:
            server.analyze(files[:1], str(tiny_weights), with_robustness=True, session="page-2")
        except RequestCancelled:
            outcome["cancelled"] = True

    with server.heavy_lane:  # another user's heavy request is running
        thread = threading.Thread(target=waiting)
        thread.start()
        while not server.cancel("page-2"):
            pass
        thread.join(timeout=10)
    assert outcome == {"cancelled": True}

def test_estimates_learn_the_models_own_time_not_the_queue(server, tiny_weights, files):
    """A request that waited behind another user's work must not teach the cost model that UNet calls are
    slow: estimates come from the model's own timings."""
    import time

    loaded = server.load(str(tiny_weights))
    loaded.costs.observe(0.001, 1)  # a fast model
    blocker = threading.Thread(target=server.model_thread.run, args=(time.sleep, 1.0))
    blocker.start()  # another user's job holds the model thread for a second
    time.sleep(0.05)
    server.analyze(files[:1], str(tiny_weights))  # waits ~1 s, then takes milliseconds
    blocker.join()
    assert loaded.costs.seconds_per_call() < 0.2


def test_a_declaration_the_pixels_do_not_support_is_said_plainly(server, tiny_weights, tmp_path):
    c2pa = pytest.importorskip("c2pa")
    from test_provenance import _certificate_chain, _sign

    chain, key = _certificate_chain()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    path = tmp_path / "signed.jpg"
    path.write_bytes(_sign(encode(make_photo(96, 64, seed=5), "JPEG"), "image/jpeg", signer))
    analysis = server.analyze([str(path)], str(tiny_weights), threshold=0.99)  # the pixels: no sign at 0.99
    row = analysis.table[0]
    assert row[1] == "NO SIGN FOUND" and row[6].startswith("declares AI generation (signed C2PA by Test Generator")
    assert "the file declares AI generation, but the pixels show no sign of it" in row[5]
    assert any(n.startswith("signed.jpg: the file declares AI generation") for n in analysis.notices)
    assert analysis.report["files"][0]["provenance"]["c2pa"]["validation"] == "valid, untrusted signer"
    assert "declared by the file): declares AI" in analysis.pictures[0][1]  # the caption says whose claim it is


def test_threads_follow_the_load_of_other_processes():
    from detector.serving import LoadAwareThreads

    clock = {"t": 0.0, "busy": 0.0, "own": 0.0}
    policy = LoadAwareThreads(cores=2, every_s=0.5, sample=lambda: (clock["t"], clock["busy"], clock["own"]))
    clock.update(t=1.0, busy=1.9, own=1.9)  # a second in which only this process worked (2 cores' worth)
    assert policy.decide() == 2
    clock.update(t=2.0, busy=3.9, own=2.9)  # another process kept one core busy
    assert policy.decide() == 1
    clock.update(t=2.2, busy=4.3, own=2.9)  # too soon to decide again: the last decision holds
    assert policy.decide() == 1
    clock.update(t=3.0, busy=4.3, own=2.9)  # the other process went away
    assert policy.decide() == 2


def test_model_jobs_run_with_the_decided_thread_count(server, tiny_weights, files):
    import torch

    from detector.serving import ModelThread

    fixed = ModelThread(threads=1)
    assert fixed.run(torch.get_num_threads) == 1 and list(fixed.used) == [1]
    server.analyze(files[:1], str(tiny_weights))
    assert server.model_thread.used and all(1 <= n <= (__import__("os").cpu_count() or 1) for n in server.model_thread.used)
