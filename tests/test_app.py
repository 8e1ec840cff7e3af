"""The web demo in the four layers of testing: plain functions, an in-process call, gradio_client
against the launched app, and a real browser (Debian's chromium driven by Playwright)."""

from __future__ import annotations

import json
import os
import re
import shutil
import zlib
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("MPLBACKEND", "Agg")

import gradio as gr
from conftest import encode, make_photo

import app
from detector.report import VERDICT_WORDS

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "detector" / "weights" / "card.json"


def _quiet(*_, **__):
    return None


def _detect(*args, **kwargs):
    """``app.detect`` with its results table (a pandas Styler, for the verdict colours) as plain rows."""
    table, *rest = app.detect(*args, **kwargs)
    return (table.data.values.tolist(), *rest)


@pytest.fixture
def inputs(tmp_path) -> dict[str, str]:
    good = tmp_path / "photo.png"
    good.write_bytes(encode(make_photo(seed=3)))
    second = tmp_path / "second.jpg"
    second.write_bytes(encode(make_photo(70, 90, seed=4), "JPEG", quality=85))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    return {"good": str(good), "second": str(second), "corrupt": str(corrupt)}


# ------------------------------------------------------------------------ 1. plain functions
def test_detect_function_keeps_good_results_beside_a_bad_file(tiny_weights, inputs):
    table, gallery, _plot, report_path, report, caveat = _detect(
        [(inputs["good"], None), (inputs["corrupt"], None), (inputs["second"], None)], str(tiny_weights), 0.5, False,
        True, progress=_quiet)
    assert [row[0] for row in table] == ["photo.png", "corrupt.png", "second.jpg"]
    assert table[1][1] == "ERROR" and ("damaged" in table[1][5] or "not an image" in table[1][5])
    for row in (table[0], table[2]):
        assert row[1] in ("FAKE", "NO SIGN FOUND", "UNSURE") and 0 <= row[2] <= 1 and row[3] == 1
        assert row[5] == "stable" or row[5].startswith("verdict flips")
    assert len(gallery) == 2 and [Path(path).suffix for path, _ in gallery] == [".png", ".png"]  # flat sheets: lossless
    saved = json.loads(Path(report_path).read_text())
    assert saved == report and saved["policy"]["threshold"] == 0.5 and len(saved["files"]) == 3
    assert "robustness" in saved["files"][0]
    assert "not measured here" in caveat and "not proof" not in caveat  # the tiny card has no validation figures


def test_verdict_cells_are_coloured_by_verdict(tiny_weights, inputs):
    styled, *_ = app.detect([inputs["good"], inputs["corrupt"]], str(tiny_weights), 0.5, False, False,
                            progress=_quiet)
    styles = styled._compute().ctx  # (row, column) → [(property, value)]
    verdicts = styled.data["verdict"].tolist()
    assert verdicts[1] == "ERROR" and styled.data["p_fake"].tolist()[1] is None
    for row, verdict in enumerate(verdicts):
        assert styles[(row, 1)] == [("background-color", app.VERDICT_COLOURS[verdict])]
    assert (0, 0) not in styles  # only the verdict column


def _limits(monkeypatch, **changes) -> None:
    monkeypatch.setattr(app.SERVER, "limits", replace(app.SERVER.limits, **changes))


def test_oversized_file_is_refused_alone(tiny_weights, inputs, monkeypatch):
    big, small = sorted([inputs["good"], inputs["second"]], key=os.path.getsize, reverse=True)
    _limits(monkeypatch, max_file_bytes=os.path.getsize(small))
    table, *_ = _detect([big, small], str(tiny_weights), 0.5, False, False, progress=_quiet)
    assert table[0][1] == "ERROR" and "per file" in table[0][5]
    assert table[1][1] in ("FAKE", "NO SIGN FOUND", "UNSURE") and table[1][2] is not None


def test_tiny_image_is_unsure_with_a_note(tiny_weights, tmp_path):
    tiny = tmp_path / "dot.png"
    tiny.write_bytes(encode(make_photo(1, 1)))
    table, *_ = _detect([str(tiny)], str(tiny_weights), 0.5, False, False, progress=_quiet)
    assert table[0][1] == "UNSURE" and "1×1 px" in table[0][5] and "unreliable" in table[0][5]


def test_requests_leave_no_temp_folders(tiny_weights, inputs, monkeypatch, tmp_path):
    import tempfile

    reports = tmp_path / "reports"
    monkeypatch.setattr(app.SERVER, "report_dir", reports)
    (reports / "another-server").mkdir(parents=True)  # a folder this server did not write: never pruned
    before = {p.name for p in Path(tempfile.gettempdir()).glob("distildire-*")}
    first = Path(_detect([inputs["good"]], str(tiny_weights), 0.5, False, False, progress=_quiet)[3])
    assert first.name == "report.json"
    pictures = [p for p in reports.rglob("*.*") if p.suffix in (".png", ".jpg")]
    assert {p.stem for p in pictures} >= {"photo-evidence", "scores"}  # named after the input, not a random hex
    for path in reports.iterdir():
        os.utime(path, (0, 0))  # an hour-old request's files are pruned by the next request
    (reports / "another-server").touch()
    second = Path(_detect([inputs["good"]], str(tiny_weights), 0.5, False, False, progress=_quiet)[3])
    assert not first.exists() and second.exists() and not any(path.exists() for path in pictures)
    assert (reports / "another-server").exists()
    assert {p.name for p in Path(tempfile.gettempdir()).glob("distildire-*")} <= before  # nothing new in /tmp


def test_a_single_image_does_not_wait_for_a_heavy_request(tiny_weights, inputs):
    from concurrent.futures import ThreadPoolExecutor

    app.SERVER.load(str(tiny_weights))
    with ThreadPoolExecutor(2) as pool:
        with app.SERVER.heavy_lane:  # a DIRE / robustness / many-file request is running
            light = pool.submit(_detect, [inputs["good"]], str(tiny_weights), 0.5, False, False, progress=_quiet)
            heavy = pool.submit(_detect, [inputs["good"]], str(tiny_weights), 0.5, False, True, progress=_quiet)
            assert light.result(timeout=60)[0][0][1] in ("FAKE", "NO SIGN FOUND", "UNSURE")
            assert not heavy.done()  # queued behind the running heavy request
        assert heavy.result(timeout=60)[0][0][5] in ("stable",) or "flips" in heavy.result()[0][0][5]


def test_every_model_call_runs_on_the_one_model_thread(tiny_weights, inputs, monkeypatch):
    import threading

    from detector import Detector

    threads, original = set(), Detector.detect

    def recording(self, *args, **kwargs):
        threads.add(threading.get_ident())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Detector, "detect", recording)
    five = [inputs["good"], inputs["second"]] * 2 + [inputs["good"]]
    _detect([inputs["good"]], str(tiny_weights), 0.5, False, False, progress=_quiet)  # light, batched
    _detect(five, str(tiny_weights), 0.5, False, True, progress=_quiet)  # heavy: many files + robustness
    _detect([inputs["good"]], str(tiny_weights), 0.5, True, False, progress=_quiet)  # heavy: DIRE
    assert threads == {app.SERVER.model_thread.ident}


def test_whole_request_problems_raise_gr_error(tiny_weights):
    with pytest.raises(gr.Error, match="at least one image"):
        _detect(None, str(tiny_weights), 0.5, False, False, progress=_quiet)
    with pytest.raises(gr.Error, match="cannot be loaded"):
        _detect([__file__], "no-such-model", 0.5, False, False, progress=_quiet)


def test_threshold_slider_decides_the_verdict(tiny_weights, inputs):
    low = _detect([inputs["good"]], str(tiny_weights), 0.05, False, False, progress=_quiet)[0]
    high = _detect([inputs["good"]], str(tiny_weights), 0.95, False, False, progress=_quiet)[0]
    p = low[0][2]
    assert low[0][1] == ("FAKE" if p >= 0.15 else "UNSURE") and high[0][1] == ("NO SIGN FOUND" if p < 0.85 else "UNSURE")


@pytest.mark.parametrize("threshold", [0.3, 0.8])
def test_one_threshold_across_table_report_and_robustness(tiny_weights, inputs, threshold):
    table, _, _, _, report, _ = _detect([inputs["good"], inputs["second"]], str(tiny_weights), threshold,
                                        False, True, progress=_quiet)
    assert report["policy"]["threshold"] == threshold
    for row, entry in zip(table, report["files"]):
        side = "fake" if entry["p_fake"] >= threshold else "real"
        assert entry["label"] == side and row[1] == VERDICT_WORDS[entry["verdict"]] and entry["verdict"] in (side, "unsure")
        flipped = [name for name, check in entry["robustness"].items()
                   if (check["p_fake"] >= threshold) != (entry["p_fake"] >= threshold)]
        assert [n for n, c in entry["robustness"].items() if c["flips"]] == flipped
        assert row[5] == ("verdict flips: " + ", ".join(flipped) if flipped else "stable")


def test_dire_evidence_and_cost_panel(tiny_weights, inputs):
    table, gallery, *_ = _detect([inputs["good"]], str(tiny_weights), 0.5, True, False, progress=_quiet)
    assert table[0][3] == 41
    with Image.open(gallery[-1][0]) as sheet:  # input | ε on the first row, reconstruction | DIRE on the second
        assert sheet.mode == "RGB" and sheet.height > sheet.width * 0.9
    panel = app.cost_panel(str(tiny_weights))
    assert "| 40 |" in panel and "| 1 |" in panel
    assert "runs the student, ε UNet, DIRE UNet" in panel  # which runtime runs what, as the server measured it


def test_official_presets_listed_only_when_available(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILDIRE_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DISTILDIRE_SHOW_OFFICIAL", raising=False)
    assert [value for _, value in app.model_choices("bundled")] == ["bundled", "bundled-fast"]
    (tmp_path / "imagenet-distil-dire-11e.pth").write_bytes(b"x")
    (tmp_path / "256x256_diffusion_uncond.pt").write_bytes(b"x")
    assert "distildire-imagenet" in [value for _, value in app.model_choices("bundled")]
    monkeypatch.setenv("DISTILDIRE_SHOW_OFFICIAL", "1")
    assert "distildire-celebahq" in [value for _, value in app.model_choices("bundled")]


def test_model_card_of_an_absent_official_model_never_downloads(tmp_path, monkeypatch):
    from detector import registry, serving

    monkeypatch.setenv("DISTILDIRE_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def no_download(*args, **kwargs):
        raise AssertionError("a UI handler started a download")

    monkeypatch.setattr(registry, "download", no_download)
    monkeypatch.setattr(serving, "download", no_download)
    text = app.card_markdown("distildire-imagenet")
    assert "imagenet-distil-dire-11e.pth" in text and "not on this server yet" in text and "CC BY-NC" in text
    assert app.card_threshold("distildire-imagenet") == 0.5


def test_running_an_absent_official_model_downloads_it_with_progress(tmp_path, monkeypatch, inputs):
    from test_registry import _place_official_files

    from detector import registry, serving

    monkeypatch.setenv("DISTILDIRE_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    messages = []

    def progress(fraction, desc=None, **_):
        messages.append(desc or "")

    with pytest.raises(gr.Error, match="cannot be loaded.*imagenet-distil-dire-11e.pth"):  # offline: says what to fetch
        _detect([inputs["good"]], "distildire-imagenet", 0.5, False, False, progress=progress)
    assert any(m.startswith("downloading distildire-imagenet") for m in messages)

    monkeypatch.setattr(serving, "download", lambda name: _place_official_files(tmp_path))  # the fetch succeeds
    table, *_ = _detect([inputs["good"]], "distildire-imagenet", 0.5, False, False, progress=progress)
    assert table[0][1] in ("FAKE", "NO SIGN FOUND", "UNSURE") and table[0][3] == 1
    assert registry.is_local("distildire-imagenet")
    app.SERVER.unload("distildire-imagenet")  # the next test's cache is another folder


def test_dire_on_cpu_is_refused_above_the_time_limit(tiny_weights, inputs, monkeypatch):
    _limits(monkeypatch, dire_cpu_limit_s=1e-9)
    with pytest.raises(gr.Error, match="limit here is .*Untick DIRE"):
        _detect([inputs["good"]], str(tiny_weights), 0.5, True, False, progress=_quiet)
    table, *_ = _detect([inputs["good"]], str(tiny_weights), 0.5, False, False, progress=_quiet)
    assert table[0][1] in ("FAKE", "NO SIGN FOUND", "UNSURE")  # the verdict alone is never refused


def test_dire_progress_moves_with_every_unet_call(tiny_weights, inputs, monkeypatch):
    _limits(monkeypatch, progress_every_s=0.0)  # every call reported (throttled to 4 a second when served)
    messages = []
    _detect([inputs["good"], inputs["second"]], str(tiny_weights), 0.5, True, False,
               progress=lambda fraction, desc=None, **_: messages.append((fraction, desc or "")))
    calls = [desc for _, desc in messages if "UNet call" in desc]
    assert len(calls) == 2 * 41 and calls[-1].startswith("DIRE for image 2 of 2: UNet call 82 of 82")
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions)  # never goes backwards

    _limits(monkeypatch, progress_every_s=3600.0)
    messages.clear()
    _detect([inputs["good"]], str(tiny_weights), 0.5, True, False,
               progress=lambda fraction, desc=None, **_: messages.append(desc or ""))
    shown = [d.split(": ")[1].split(",")[0] for d in messages if "UNet call" in d]
    assert shown == ["UNet call 1 of 41", "UNet call 41 of 41"]  # throttled: the first and the last


def test_a_slow_model_says_how_long_before_it_runs(tiny_weights, inputs, monkeypatch):
    costs = app.SERVER.load(str(tiny_weights)).costs
    monkeypatch.setattr(costs, "seconds_per_call", lambda kind="eps": 11.0)  # as the ADM-256 on 2 CPU cores
    messages = []
    _detect([inputs["good"], inputs["second"]], str(tiny_weights), 0.5, False, False,
               progress=lambda fraction, desc=None, **_: messages.append(desc or ""))
    assert "scoring, about 22 s" in messages  # 2 images × 1 UNet call × 11 s, said before scoring


def test_the_page_says_which_model_runs_and_why(tiny_weights):
    demo = app.build_demo(str(tiny_weights), "no GPU on this server")
    why = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "model-why"]
    assert why and "no GPU on this server" in why[0].value


def test_the_ui_module_imports_only_gradio_and_the_serving_modules():
    """app.py is the page: it may import the standard library, gradio (and Spaces' ``spaces``), and of the
    library only what serves, draws and describes — never a model, torch or numpy."""
    import ast
    import sys

    allowed = {"gradio", "spaces", "pandas", "detector.serving", "detector.visualize", "detector.card"}
    tree = ast.parse((ROOT / "app.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    outside = {name for name in imported if name not in allowed and name.split(".")[0] not in sys.stdlib_module_names}
    assert not outside, outside
    assert {"gradio", "detector.serving"} <= imported  # the check reads real imports


# ------------------------------------------------------------------------ 2. in-process call
def test_in_process_call(tiny_weights, inputs):
    demo = app.build_demo(str(tiny_weights))
    table, _gallery, _plot, _report_file, report, _caveat = demo(
        [{"image": inputs["good"], "caption": None}], str(tiny_weights), 0.5, False, False, api_name="detect")
    rows = table["data"] if isinstance(table, dict) else table
    assert rows[0][0] == "photo.png" and rows[0][1] in ("FAKE", "NO SIGN FOUND", "UNSURE")
    report = report.model_dump() if hasattr(report, "model_dump") else report  # gradio's JsonData
    assert report["files"][0]["unet_calls"] == 1


# ------------------------------------------------------------------------ 3. gradio_client
@pytest.fixture(scope="module")
def served(tiny_weights, tmp_path_factory):
    os.environ["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio"))
    demo = app.build_demo(str(tiny_weights))
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **app.launch_options())
    yield url
    demo.close()


def test_client_gets_table_and_json(served, tiny_weights, inputs, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(served, verbose=False)
    assert "/detect" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    bad = {"corrupt": inputs["corrupt"], "empty": tmp_path / "empty.png", "text": tmp_path / "notes.png",
           "bomb": tmp_path / "bomb.png"}
    bad["empty"].write_bytes(b"")
    bad["text"].write_text("not an image at all")
    header = bytearray(encode(make_photo(8, 8)))
    header[16:24] = (40000).to_bytes(4, "big") * 2  # IHDR claims 40000×40000 (with a valid checksum)
    header[29:33] = zlib.crc32(bytes(header[12:29])).to_bytes(4, "big")
    bad["bomb"].write_bytes(bytes(header))
    files = [inputs["good"], *map(str, bad.values()), inputs["second"]]
    table, _gallery, _plot, report_file, _report, caveat = client.predict(
        [{"image": handle_file(f), "caption": None} for f in files], str(tiny_weights), 0.5, False, False,
        api_name="/detect")
    rows = table["data"]
    assert [r[0] for r in rows] == [Path(f).name for f in files]
    assert rows[0][1] in ("FAKE", "NO SIGN FOUND", "UNSURE") and rows[-1][1] in ("FAKE", "NO SIGN FOUND", "UNSURE")
    assert isinstance(rows[0][2], float) and 0 <= rows[0][2] <= 1  # the API gets numbers, not the displayed text
    assert table["metadata"]["styling"][0][1].startswith("background-color")  # and the verdict colours
    for row in rows[1:-1]:  # each bad file: its own error row with a reason
        assert row[1] == "ERROR" and row[5], row
    assert "too large" in rows[4][5] and "empty" in rows[2][5]
    assert json.loads(Path(report_file).read_text())["files"][1]["error"]
    assert "outside what it was trained on" in caveat
    client.close()


def test_every_event_that_analyzes_keeps_the_groups_concurrency(tiny_weights):
    """Gradio lowers a concurrency group's limit to its lowest member's as events first arrive: one event
    without a limit (e.g. the example click) would serialise every user's request from then on."""
    demo = app.build_demo(str(tiny_weights))
    queue = demo._queue
    members = [fn for fn in demo.fns.values() if fn.concurrency_id == "detect"]
    assert len(members) == 2  # Analyze and the example click
    for fn in members:  # as if each had been triggered once
        queue.create_event_queue_for_fn(fn)
    assert queue.event_queue_per_concurrency_id["detect"].concurrency_limit == app.MAX_WAITING


def test_many_users_at_once_are_merged_and_never_wait_behind_a_heavy_request(served, tiny_weights, inputs,
                                                                                tmp_path, monkeypatch):
    """20 users send one image each while another runs a 16-image robustness check, all through the
    launched app: the server's own logs show the light requests merged into shared model calls and
    finished while the heavy one was still running (its pieces let them in between)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client, handle_file

    from detector import serving

    slow = serving.robustness

    def one_piece(*args, **kwargs):  # each heavy piece takes a while, as on a real image
        time.sleep(0.3)
        return slow(*args, **kwargs)

    monkeypatch.setattr(serving, "robustness", one_piece)
    heavy_files = []
    for i in range(16):
        path = tmp_path / f"heavy{i}.png"
        path.write_bytes(encode(make_photo(60 + i, 50, seed=i)))
        heavy_files.append(str(path))
    loaded = app.SERVER.load(str(tiny_weights))
    batches_before, events_before = len(loaded.batcher.batches), len(app.SERVER.events)

    def call(files: list[str], robust: bool):
        client = Client(served, verbose=False)
        try:
            return client.predict([{"image": handle_file(f), "caption": None} for f in files], str(tiny_weights),
                                  0.5, False, robust, api_name="/detect")
        finally:
            client.close()

    def events():
        return list(app.SERVER.events)[events_before:]

    with ThreadPoolExecutor(21) as pool:
        heavy = pool.submit(call, heavy_files, True)
        deadline = time.time() + 60
        while not any(lane == "heavy" for _, _, lane, kind in events()) and time.time() < deadline:
            time.sleep(0.05)
        lights = [pool.submit(call, [inputs["good"]], False) for _ in range(20)]
        answers = [f.result(timeout=120) for f in lights]
        assert heavy.result(timeout=300)[0]["data"][15][1] in ("FAKE", "NO SIGN FOUND", "UNSURE")
    assert all(a[0]["data"][0][1] in ("FAKE", "NO SIGN FOUND", "UNSURE") for a in answers)
    log = events()
    heavy_start = next(t for t, _, lane, kind in log if lane == "heavy" and kind == "start")
    heavy_done = next(t for t, _, lane, kind in log if lane == "heavy" and kind == "done")
    light_done = [t for t, _, lane, kind in log if lane == "light" and kind == "done"]
    assert len(light_done) == 20 and all(heavy_start < t < heavy_done for t in light_done)
    merged = list(loaded.batcher.batches)[batches_before:]
    assert sum(merged) == 20 and max(merged) > 1  # requests shared model calls


@pytest.mark.skipif(not BUNDLED.is_file(), reason="bundled weights not exported yet")
def test_examples_say_what_the_model_says():
    """The bundled model on the shipped examples, through the API of a launched app: each one lands on
    the side of the card threshold its manifest's ``model_label`` records — the misses included, and
    captioned as such."""
    from gradio_client import Client, handle_file

    manifest = json.loads((ROOT / "examples" / "manifest.json").read_text())
    threshold = json.loads(BUNDLED.read_text())["variants"]["distildire"]["threshold"]
    assert manifest["threshold"] == pytest.approx(threshold)
    demo = app.build_demo("bundled")
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)
        files = [{"image": handle_file(str(ROOT / "examples" / e["file"])), "caption": None} for e in manifest["files"]]
        table, *_ = client.predict(files, "bundled", threshold, False, False, api_name="/detect")
        client.close()
    finally:
        demo.close()
    scores = {row[0]: row[2] for row in table["data"]}
    assert {e["label"] for e in manifest["files"]} == {"real", "fake"} and len(manifest["files"]) >= 12
    for entry in manifest["files"]:  # on the model card's threshold (the app may still call a score near it "unsure")
        assert ("fake" if scores[entry["file"]] >= threshold else "real") == entry["model_label"], entry
    assert any(e["model_label"] == e["label"] for e in manifest["files"])
    captions = dict(app.example_items())
    for entry in manifest["files"]:
        wrong = entry["model_label"] != entry["label"]
        said = "missed by this model" if entry["label"] == "fake" else "wrongly flagged by this model"
        assert (said in captions[str(ROOT / "examples" / entry["file"])]) == wrong, entry


# ------------------------------------------------------------------------ 4. real browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian chromium not installed")
def test_browser_upload_with_a_bad_file_and_phone_width(served, inputs, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM, "CI must install Debian's chromium"
    bad = tmp_path / "notes.png"
    bad.write_text("a text file renamed .png")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.goto(served)
        page.locator("#images input[type=file]").set_input_files([inputs["good"], str(bad), inputs["second"]])
        expect(page.locator("#images img")).to_have_count(3, timeout=20_000)
        page.get_by_role("button", name="Analyze", exact=True).click()
        table = page.locator("#verdicts")
        expect(table).to_contain_text("second.jpg", timeout=60_000)
        text = table.inner_text()
        assert "photo.png" in text and "notes.png" in text and "ERROR" in text and "not an image" in text
        assert any(v in text for v in ("FAKE", "NO SIGN FOUND", "UNSURE"))  # the good files are scored beside the bad one
        expect(page.locator("#analyze")).to_be_enabled()  # disabled while the request ran, enabled again after
        error_cell = page.locator("#verdicts [role=gridcell]").filter(has_text=re.compile(r"^\s*ERROR\s*$")).first
        background = error_cell.evaluate("el => getComputedStyle(el).backgroundColor + ' ' + el.outerHTML")
        assert "128, 128, 128" in background, background  # the verdict's colour reaches the page
        page.set_viewport_size({"width": 390, "height": 844})  # a phone: verdict cells stay on one line
        table.scroll_into_view_if_needed()  # the table renders its rows when it is in view
        cells = page.locator("#verdicts [role=gridcell]").filter(has_text=re.compile(r"^\s*(FAKE|NO SIGN FOUND|UNSURE|ERROR)\s*$"))
        expect(cells).to_have_count(3, timeout=10_000)
        for i in range(3):  # each verdict on one line, not a letter per line
            lines = cells.nth(i).evaluate("""el => { const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
                const tops = new Set();
                while (walker.nextNode()) { if (!walker.currentNode.textContent.trim()) continue;
                    const range = document.createRange(); range.selectNodeContents(walker.currentNode);
                    for (const r of range.getClientRects()) if (r.width > 0) tops.add(Math.round(r.top)); }
                return tops.size; }""")
            assert lines == 1 and cells.nth(i).bounding_box()["width"] > 50, (cells.nth(i).inner_text(), lines)
        screenshots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
        screenshots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshots / "app_results_390px.png"), full_page=True)
        browser.close()


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian chromium not installed")
def test_browser_error_paste_and_small_image(served, tmp_path):
    """After an error the Analyze button comes back; the visible paste button and Ctrl+V both put a
    copied image into the upload area; a 64-px image gets a heat map wide enough to read."""
    import base64

    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM, "CI must install Debian's chromium"
    small = base64.b64encode(encode(make_photo(64, 64, seed=9))).decode()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1280, "height": 1400})
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=served.rstrip("/"))
        page = context.new_page()
        page.goto(served)
        analyze = page.locator("#analyze")
        analyze.click()  # no images: an error
        expect(page.get_by_text("Add at least one image")).to_be_visible(timeout=10_000)
        expect(analyze).to_be_enabled(timeout=10_000)  # the button came back

        page.evaluate("""async (b64) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            await navigator.clipboard.write([new ClipboardItem({"image/png": new Blob([bytes], {type: "image/png"})})]);
        }""", small)
        page.get_by_role("button", name="Paste from clipboard").click()
        expect(page.locator("#images img")).to_have_count(1, timeout=10_000)

        page.evaluate("""(b64) => {  // Ctrl+V anywhere on the page
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const data = new DataTransfer();
            data.items.add(new File([bytes], "pasted.png", {type: "image/png"}));
            document.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true}));
        }""", small)
        expect(page.locator("#images img")).to_have_count(2, timeout=10_000)

        analyze.click()
        expect(page.locator("#verdicts")).to_contain_text("1", timeout=60_000)
        heatmap = page.locator("#evidence img").first
        expect(heatmap).to_be_visible(timeout=20_000)
        width = heatmap.evaluate("img => img.naturalWidth")
        assert width >= 320, width  # a 64-px image enlarged so its tiles and legend are readable
        expect(analyze).to_be_enabled()
        browser.close()


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian chromium not installed")
def test_browser_shows_what_a_signed_file_declares(served, tmp_path):
    c2pa = pytest.importorskip("c2pa")
    from playwright.sync_api import expect, sync_playwright
    from test_provenance import _certificate_chain, _sign

    chain, key = _certificate_chain()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    signed = tmp_path / "credentials.jpg"
    signed.write_bytes(_sign(encode(make_photo(160, 120, seed=6), "JPEG"), "image/jpeg", signer))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(served)
        page.locator("#images input[type=file]").set_input_files([str(signed)])
        expect(page.locator("#images img")).to_have_count(1, timeout=20_000)
        page.locator("#analyze").click()
        expect(page.locator("#verdicts")).to_contain_text("declares AI generation (signed C2PA by Test Generator, "
                                                          "valid, untrusted signer)", timeout=60_000)
        expect(page.locator("#evidence")).to_contain_text("declared by the file", timeout=20_000)
        browser.close()
