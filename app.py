"""DistilDIRE web demo (Gradio): drop images, get a verdict and p(fake) per image, and see the evidence.

UI only: every computation lives in ``detector/``. Run ``python app.py [--host H --port P --weights NAME]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import gradio as gr
import numpy as np

from PIL import Image

from detector import Detector, WeightsNotFoundError
from detector.batching import BatchingDetector, ModelThread
from detector.analysis import build_report, measure_costs, robustness
from detector.registry import (
    AUTO, OFFICIAL, REGISTRY, cache_dir, choose_auto, describe, download, is_local, resolve_weights,
)
from detector.verdict import VerdictPolicy
from detector.visualize import evidence_sheet, tile_heatmap

try:  # ZeroGPU on Hugging Face Spaces; a no-op decorator elsewhere
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the host

    def gpu(fn=None, **_):
        return fn if fn is not None else (lambda f: f)


ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
MAX_FILES = 16
MAX_FILE_BYTES = 20_000_000  # per file: a larger one gets an error row, the others are still scored
UPLOAD_LIMIT = "200mb"  # Gradio's hard cap per uploaded file, far above MAX_FILE_BYTES
MAX_WAITING = 32
LIGHT_MAX_FILES = 4  # a request with more files, DIRE or robustness takes the heavy lane
HEAVY_LANE = threading.Lock()  # one heavy request at a time; light ones are batched beside it, never behind it
REPORT_DIR = Path(tempfile.gettempdir()) / "distildire-reports"  # reports and evidence pictures
REPORT_TTL_S = 900
#: DIRE on a CPU-only server is refused when the estimate (UNet calls × measured cost per call) is above this
DIRE_CPU_LIMIT_S = float(os.environ.get("DISTILDIRE_DIRE_CPU_LIMIT_S", 120))
PROGRESS_EVERY_S = 0.25  # at most four progress messages a second (each one costs the server ~25 ms)


def model_label(name: str) -> str:
    return REGISTRY[name].label if name in REGISTRY else name


def model_choices(default: str) -> list[tuple[str, str]]:
    """Bundled models always; official presets when their files are on this machine, or when
    ``DISTILDIRE_SHOW_OFFICIAL=1`` says the server may download them when a user first runs one.
    Registry metadata and file checks only: never a download."""
    names = [default] + [n for n in ("bundled", "bundled-fast") if n != default]
    show_all = os.environ.get("DISTILDIRE_SHOW_OFFICIAL") == "1"
    names += [name for name in OFFICIAL if name != default and (show_all or is_local(name))]
    return [(model_label(n), n) for n in names]


def _ensure_local(model: str, progress) -> None:
    """Download a registry model's missing files with visible progress (only ever from Analyze)."""
    if model not in REGISTRY or is_local(model):
        return
    entry = describe(model)
    progress(0.0, desc=f"downloading {entry.name}'s weights (~{entry.download_mb / 1000:.1f} GB, once per server)")
    try:
        download(model)
    except WeightsNotFoundError as exc:
        raise gr.Error(f"Model '{model}' cannot be loaded: {exc}", print_exception=False) from None


MODEL_THREAD = ModelThread()  # every model call of this server runs on this one thread (see ModelThread)


@lru_cache(maxsize=4)
def get_detector(name: str) -> Detector:
    try:
        return MODEL_THREAD.run(Detector.from_pretrained, name)
    except (WeightsNotFoundError, FileNotFoundError, ValueError) as exc:
        raise gr.Error(f"Model '{name}' cannot be loaded: {exc}", print_exception=False) from None


@lru_cache(maxsize=4)
def get_batcher(name: str) -> BatchingDetector:
    """Light requests (no DIRE) for one model, from all users, merged into shared model calls."""
    return BatchingDetector(get_detector(name), runner=MODEL_THREAD.run)


def _short(name: str, width: int = 26) -> str:
    """A file name shortened in the middle, so the distinguishing end survives."""
    return name if len(name) <= width else f"{name[: width // 2 - 1]}…{name[-(width // 2):]}"


class ScorePlot:
    """This batch's scores against the threshold, over the model card's reference histograms.

    The axes, histograms, threshold and legend are drawn once per (model, policy); a request only
    blits its markers onto a copy of that background (~5 ms instead of ~120 ms for a fresh matplotlib
    figure saved by ``gr.Plot``). Transparent background and mid-grey text: reads in light and dark mode."""

    INK = "#7a7a7a"

    def __init__(self, card: dict, model: str, policy: VerdictPolicy):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(5.6, 3.0), dpi=100, layout="constrained")  # small enough to stay legible on a phone
        fig.patch.set_alpha(0.0)
        ax = self.ax = fig.subplots()
        ax.set_facecolor("none")
        reference = card.get("reference_histograms", {})
        key = {"bundled": "distildire", "bundled-fast": "image-only"}.get(model)
        if key in reference:
            edges = np.array(reference["edges"])
            centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
            colours = {"real": "#4c9f70", "fake": "#d1495b"}
            names = {"real": "photos", "fake": "generated"}
            for kind, counts in reference[key].items():
                counts = np.array(counts, dtype=float)
                if counts.sum():
                    ax.bar(centres, counts / counts.sum(), width=width, alpha=0.4, color=colours.get(kind),
                           label=f"{names.get(kind, kind)} (validation)")
        threshold = policy.threshold
        ax.axvspan(*policy.band, color="grey", alpha=0.15, label="unsure band")
        ax.axvline(threshold, color=self.INK, lw=1.5, label=f"threshold {threshold:.2f}")
        self.top = ax.get_ylim()[1] if key in reference else 1.0
        ax.set_ylim(0, self.top)
        ax.set_xlim(0, 1)
        ax.set_yticks([])
        ax.set_xlabel("p(fake)", color=self.INK, fontsize=11)
        ax.set_title("Scores of this batch", color=self.INK, fontsize=12)
        ax.tick_params(colors=self.INK, labelsize=10)
        for spine in ax.spines.values():
            spine.set_color(self.INK)
        legend = fig.legend(fontsize=10, loc="outside lower center", ncols=2, frameon=False)
        for text in legend.get_texts():
            text.set_color(self.INK)
        self.canvas = FigureCanvasAgg(fig)
        self.canvas.draw()
        fig.set_layout_engine("none")  # positions frozen: the markers land where the background expects them
        self.background = self.canvas.copy_from_bbox(fig.bbox)
        self.lock = threading.Lock()  # one figure, many request threads

    def render(self, rows: list[dict]) -> np.ndarray:
        """H×W×4 uint8: the background with a marker and the (shortened) file name per scored row."""
        scored = [r for r in rows if r["p_fake"] is not None]
        with self.lock:
            self.canvas.restore_region(self.background)
            artists = []
            for i, r in enumerate(scored):
                y = self.top * (0.92 - 0.8 * i / max(1, len(scored)))
                artists += self.ax.plot(r["p_fake"], y, "v", color="#1f6fd1", ms=8)
                artists.append(self.ax.annotate(
                    _short(Path(r["file"]).name), (r["p_fake"], y), fontsize=10, color=self.INK, xytext=(5, 2),
                    textcoords="offset points", ha="right" if r["p_fake"] > 0.7 else "left", annotation_clip=False))
            for artist in artists:
                self.ax.draw_artist(artist)
            pixels = np.asarray(self.canvas.buffer_rgba()).copy()
            for artist in artists:
                artist.remove()
        return pixels


@lru_cache(maxsize=16)
def _score_plot_for(model: str, policy: VerdictPolicy) -> ScorePlot:
    return ScorePlot(get_detector(model).card, model, policy)


def _paths(images) -> list[str]:
    """The upload area's value (Gradio hands a gallery over as ``[(path, caption), …]``), or plain paths
    when ``detect`` is called as a function."""
    return [str(item[0] if isinstance(item, (list, tuple)) else item) for item in images or []]


def _prune_reports(max_age_s: float = REPORT_TTL_S) -> None:
    """Delete this server's reports and evidence pictures older than ``max_age_s`` (Gradio serves its
    own copies)."""
    now = time.time()
    for old in REPORT_DIR.glob("*"):
        try:
            if now - old.stat().st_mtime > max_age_s:
                old.unlink()
        except OSError:  # another request removed it first
            pass


def _write_report(report: dict) -> str:
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    _prune_reports()
    path = REPORT_DIR / f"report-{uuid.uuid4().hex[:12]}.json"
    path.write_text(json.dumps(report, indent=2))
    return str(path)


def _write_picture(pixels: np.ndarray, photo: bool) -> str:
    """An evidence picture as a file: JPEG (q90, ~3 ms) for one drawn over a photo, PNG (lossless, cheap
    for flat panels) for the labelled sheet. Encoding the heat map as PNG cost ~100 ms a request."""
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    path = REPORT_DIR / f"evidence-{uuid.uuid4().hex[:12]}.{'jpg' if photo else 'png'}"
    Image.fromarray(pixels).save(path, **({"quality": 90} if photo else {"compress_level": 1}))
    return str(path)


@contextmanager
def _heavy_lane(progress):
    """One heavy request at a time, saying so while waiting."""
    if not HEAVY_LANE.acquire(blocking=False):
        progress(0.0, desc="waiting for the request ahead of this one (DIRE / robustness / many files)")
        HEAVY_LANE.acquire()
    try:
        yield
    finally:
        HEAVY_LANE.release()


@gpu(duration=60)
def detect(images, model: str, threshold: float, with_dire: bool, with_robustness: bool,
           progress=gr.Progress(track_tqdm=True)):
    """Classify the uploaded images. Returns the results table, the evidence gallery, the score plot,
    the JSON report file and the report itself. A bad or oversized file gets an error row of its own."""
    paths = _paths(images)
    if not paths:
        raise gr.Error("Add at least one image: drop files, browse, or paste one.", print_exception=False)
    if len(paths) > MAX_FILES:
        raise gr.Error(f"At most {MAX_FILES} images per request ({len(paths)} given).", print_exception=False)
    if with_dire or with_robustness or len(paths) > LIGHT_MAX_FILES:
        with _heavy_lane(progress):
            return _detect(paths, model, threshold, with_dire, with_robustness, progress)
    return _detect(paths, model, threshold, False, False, progress)


def _detect(paths: list[str], model: str, threshold: float, with_dire: bool, with_robustness: bool, progress):
    _ensure_local(model, progress)
    progress(0.02, desc="loading model")
    detector = get_detector(model)
    names = [Path(p).name for p in paths]
    policy = detector.policy.with_threshold(threshold)  # the slider's threshold decides every verdict below
    dire = bool(with_dire) and detector.unet is not None
    if with_dire and not dire:
        gr.Warning("This model reads no diffusion UNet, so it has no DIRE map; showing its input only.")
    options = {"policy": policy, "max_file_bytes": MAX_FILE_BYTES}
    if dire:
        estimate = MODEL_THREAD.run(detector.estimate_seconds, len(paths), with_dire=True)
        if detector.device.type == "cpu" and estimate > DIRE_CPU_LIMIT_S:
            per_image = estimate / len(paths)
            raise gr.Error(
                f"DIRE with this model on this server's CPU would take about {_duration(estimate)} for {len(paths)} "
                f"image(s) ({detector.unet_calls_per_image + 2 * detector.ddim.steps} UNet calls of "
                f"{detector.seconds_per_unet_call():.2f} s each per image); the limit here is {_duration(DIRE_CPU_LIMIT_S)}. "
                f"Untick DIRE (the verdict does not need it), send at most {int(DIRE_CPU_LIMIT_S // per_image)} "
                f"image(s), or run on a GPU.", print_exception=False)
        results = _detect_with_dire(detector, paths, options, estimate, progress)
    else:
        estimate = MODEL_THREAD.run(detector.estimate_seconds, len(paths))
        progress(0.1, desc="scoring" + (f", about {_duration(estimate)}" if estimate >= 2 else ""))
        if len(paths) <= LIGHT_MAX_FILES:  # scored in one model call with other users' light requests
            results = get_batcher(model).detect(paths, policy, MAX_FILE_BYTES)
        else:
            results = []  # in pieces, so other users' requests run in between
            for start in range(0, len(paths), LIGHT_MAX_FILES):
                results += MODEL_THREAD.run(detector.detect, paths[start : start + LIGHT_MAX_FILES], **options)
    for name, result in zip(names, results):
        result.source = name  # never echo the server's temporary paths
    robust = None
    if with_robustness:
        robust = []
        for i, (path, result) in enumerate(zip(paths, results)):  # image by image, as above
            progress(0.85 + 0.1 * i / len(paths), desc=f"robustness re-checks: image {i + 1} of {len(paths)}")
            robust.append(MODEL_THREAD.run(robustness, detector, [path], [result], policy)[0])
    report = build_report(detector, paths, results, names, robust, policy)

    table = []
    for entry in report["files"]:
        notes = [entry["error"] or entry.get("warning") or ""]
        if entry.get("robustness"):
            flipped = [k for k, v in entry["robustness"].items() if v["flips"]]
            notes.append("verdict flips: " + ", ".join(flipped) if flipped else "stable")
        table.append([entry["file"], entry["verdict"].upper(),
                      None if entry["p_fake"] is None else round(entry["p_fake"], 4), entry["unet_calls"],
                      round(entry["timings_ms"].get("total", 0), 1) if entry["p_fake"] is not None else None,
                      "; ".join(n for n in notes if n)])
    gallery = []
    for name, result in zip(names, results):
        if result.ok:
            label = f"{name}: {result.verdict.upper()} (p_fake = {result.p_fake:.3f})"
            if result.grid is not None:  # where in the image the model sees generation traces
                gallery.append((_write_picture(tile_heatmap(result, threshold=threshold), photo=True),
                                f"{label} — p(fake) per tile"))
            gallery.append((_write_picture(evidence_sheet(result), photo=False), f"{label} — what the model read"))
    plot = _write_picture(_score_plot_for(model, policy).render(report["files"]), photo=False)
    progress(1.0)
    return _styled(table), gallery, plot, _write_report(report), report


VERDICT_COLOURS = {  # translucent, so they read on light and dark backgrounds alike
    "FAKE": "rgba(209, 73, 91, 0.28)", "REAL": "rgba(76, 159, 112, 0.28)",
    "UNSURE": "rgba(230, 170, 40, 0.32)", "ERROR": "rgba(128, 128, 128, 0.28)",
}
TABLE_HEADERS = ["file", "verdict", "p_fake", "UNet calls", "ms", "notes"]


def _styled(rows: list[list]):
    """The results table with each verdict cell coloured by its verdict (a pandas Styler; Gradio's
    Dataframe renders its cell styles, and the API still receives plain data)."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=TABLE_HEADERS, dtype=object)  # object: a missing score stays None
    styled = frame.style.map(lambda v: f"background-color: {VERDICT_COLOURS.get(v, 'transparent')}", subset=["verdict"])
    return styled.format({"p_fake": "{:.4f}", "ms": "{:.0f}"}, na_rep="")  # the displayed text; the data keeps full values


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _detect_with_dire(detector: Detector, paths: list[str], options: dict, estimate: float, progress) -> list:
    """One image at a time, the progress bar moving with every UNet call and the time left re-estimated
    from the calls done so far."""
    per_image = detector.unet_calls_per_image + 2 * detector.ddim.steps
    total, done, started = per_image * len(paths), {"calls": 0, "shown": 0.0}, time.perf_counter()
    results = []
    for i, path in enumerate(paths):
        def tick(n: int, i: int = i) -> None:
            done["calls"] += n  # one call per input it scored
            now = time.perf_counter()
            if now - done["shown"] < PROGRESS_EVERY_S and done["calls"] < total:
                return  # each update is a message to the browser: a few per second are enough
            done["shown"] = now
            rate = (now - started) / max(1, done["calls"])
            progress(0.05 + 0.8 * min(1.0, done["calls"] / total),
                     desc=f"DIRE for image {i + 1} of {len(paths)}: UNet call {done['calls']} of {total}, "
                          f"about {_duration(rate * (total - done['calls']))} left")

        progress(0.05 + 0.8 * i / len(paths), desc=f"DIRE for image {i + 1} of {len(paths)}: about "
                                                   f"{_duration(estimate * (len(paths) - i) / len(paths))} left")
        results += MODEL_THREAD.run(detector.detect, [path], with_dire=True, on_unet_calls=tick, **options)
    return results


def cost_panel(model: str) -> str:
    detector = get_detector(model)
    costs = MODEL_THREAD.run(measure_costs, detector)
    lines = [f"Measured on this server ({costs['device']}, {costs['image_size']} px, batch 1):", "",
             "| pipeline | UNet calls | ms / image |", "| --- | ---: | ---: |"]
    for name, entry in costs["pipelines"].items():
        lines.append(f"| {name} | {entry['unet_calls']} | {'—' if entry['ms'] is None else entry['ms']} |")
    return "\n".join(lines)


def card_threshold(model: str) -> float:
    """The threshold the model card sets (chosen on validation); 0.5 for the official presets (the
    authors' threshold) and when it cannot be read. Never fetches anything."""
    if model in OFFICIAL:
        return 0.5
    try:
        return round(resolve_weights(model).threshold, 2)  # bundled or a local folder: files on disk only
    except (WeightsNotFoundError, FileNotFoundError, ValueError):
        return 0.5


def _registry_card(model: str) -> list[str]:
    """What the registry says of a model (metadata only), for presets whose files may not be here."""
    entry = describe(model)
    out = [f"### {entry.label}", entry.description, "", f"**Licence:** {entry.license}", "",
           f"**Input:** {entry.preprocessing} at {entry.image_size} px; ε network: {entry.unet}; "
           f"{entry.unet_calls_per_image} UNet call(s) per image for the verdict, {entry.dire_unet_calls} more for DIRE.", ""]
    if entry.files:
        state = "on this server" if is_local(model) else "not on this server yet: downloaded when you first run it"
        out += [f"**Files** ({state}):", ""] + [f"- `{f.filename}` (~{f.approx_mb:,.0f} MB) from {f.origin}"
                                                   for f in entry.files]
        out += ["", f"Fetch them ahead of time with `python -m detector download {model}`, or put them in "
                f"`{cache_dir()}` by hand."]
    return out


def card_markdown(model: str) -> str:
    """The model card tab: registry metadata for the official presets (no download), the card file for
    the bundled weights and local folders."""
    if model in OFFICIAL:
        return "\n".join(_registry_card(model))
    try:
        spec = resolve_weights(model)
    except (WeightsNotFoundError, FileNotFoundError, ValueError) as exc:
        return f"Model card of '{model}' cannot be read: {exc}"
    card = spec.card
    out = [f"### {model_label(model)}", card.get("description", ""), "", f"**Licence:** {spec.license}", ""]
    metrics = card.get("metrics", {})
    if metrics:
        out += ["**Out-of-fold metrics** (each image scored by a model that never saw its generator family or "
                "photo source; threshold and calibration chosen the same way):", "",
                "| model | ROC-AUC | AP | TPR | FPR | AUC after JPEG q75 | photos flagged after blur / median / denoise / 0.5× | ECE |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, m in metrics.items():
            clean, cond = m["clean"], m.get("conditions", {})
            smoothed = " / ".join(f"{cond[k]['fpr']:.2f}" for k in ("blur_1.0", "median_3", "denoise", "rescale_0.5x") if k in cond)
            jpeg = cond.get("jpeg_q75", {}).get("auc")
            label = f"{name} (previous run, not re-evaluated)" if m.get("carried_over") else name
            out.append(f"| {label} | {clean.get('auc', float('nan')):.3f} | {clean.get('ap', float('nan')):.3f} | "
                       f"{clean['tpr']:.2f} | {clean['fpr']:.2f} | {'—' if jpeg is None else f'{jpeg:.3f}'} | "
                       f"{smoothed or '—'} | {clean['ece']:.3f} |")
    if card.get("threshold_policy"):
        out += ["", f"**Threshold:** {card['threshold_policy']}."]
    families = metrics.get("student", {}).get("families", {})
    if families and all("found" in f for f in families.values()):
        out += ["", "**Generated images of generators it never saw, found at the card threshold** (each family "
                "scored by the fold model trained without it):", "", "| family | found | ROC-AUC vs photos |",
                "| --- | ---: | ---: |"]
        out += [f"| {name} | {f['found']} of {f['n']} | {f['auc']:.2f} |"
                for name, f in sorted(families.items(), key=lambda kv: -kv[1]["n"])]
    if card.get("limits"):
        out += ["", "**What it can and cannot detect:**", ""] + [f"- {line}" for line in card["limits"]]
    data = card.get("data")
    if data and "images" in data:
        families = ", ".join(f"{k} ({v})" for k, v in data.get("generator_families", {}).items())
        out += ["", f"**Data:** {data['images']['generated']} generated images and {data['images']['photos']} photos. "
                f"Generator families: {families}."]
    out += ["", "**Official weights:** `python -m detector download distildire-imagenet` (or put "
            "`imagenet-distil-dire-11e.pth` from huggingface.co/yevvonlim/distildire and `256x256_diffusion_uncond.pt` "
            f"from openai/guided-diffusion in `{cache_dir()}`), then choose the official model here or use "
            "`Detector.from_pretrained('distildire-imagenet')`."]
    return "\n".join(out)


def example_items() -> list[tuple[str, str]]:
    """(path, caption) of the shipped examples; the caption states the true label and its source, and
    says so where the bundled model gets the example wrong (the examples include its mistakes)."""
    manifest = EXAMPLES / "manifest.json"
    if not manifest.is_file():
        return []
    items = []
    for e in json.loads(manifest.read_text())["files"]:
        text = f"{e['label']}: {'photo' if e['label'] == 'real' else e['generator']}"
        if e.get("model_label") not in (None, e["label"]):  # first, so that a cut-off caption still says it
            text = ("missed by this model — " if e["label"] == "fake" else "wrongly flagged by this model — ") + text
        items.append((str(EXAMPLES / e["file"]), text))
    return items


def pick_example(evt: gr.SelectData) -> list[tuple[str, None]]:
    """The clicked example thumbnail, as the upload area's value."""
    items = example_items()
    return [(items[evt.index][0], None)]


CSS = """
#verdicts td, #verdicts th, #verdicts th * { white-space: nowrap; }
#verdicts td:nth-child(1) { white-space: normal; overflow-wrap: anywhere; min-width: 8em; max-width: 16em; }
#verdicts td:nth-child(6) { white-space: normal; min-width: 14em; }
#verdicts td:nth-child(2) { font-weight: 700; }
.small-note { font-size: 0.9em; opacity: 0.85; }
"""

HOW_TO_READ = (
    "**How to read the evidence.** The first picture (tiled models) is your image under the score of each "
    "tile the model read: blue = photo-like, red = generation traces, on a fixed 0–1 scale; the black box "
    "marks the tile shown next. The second picture is what the model read for that tile: its pixels, and "
    "the noise **ε** a diffusion UNet predicts for them at t = 0 (grey = 0). With *teacher DIRE* ticked it "
    "adds the DDIM reconstruction and the DIRE map |x − x̂| (brighter = the diffusion model reconstructs "
    "that place less well). Scores inside the unsure band around the threshold (grey in the score plot; "
    "the model card sets its width: where thresholds validated on different photo sources disagree), and "
    "images far smaller than the model's input, are reported as **unsure**."
)


def build_demo(default_model: str = "bundled", why: str | None = None) -> gr.Blocks:
    """The page; ``why`` (from ``choose_auto``) says on it why ``default_model`` runs by default."""
    choices = model_choices(default_model)
    examples = example_items()
    with gr.Blocks(title="DistilDIRE detector", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# DistilDIRE — was this image made by a diffusion model?\n"
            "Drop, browse or paste images, or click an example, then **Analyze**: you get **p(fake)**, a verdict "
            "and the evidence per image. DistilDIRE reads the noise **ε** a diffusion UNet predicts for the "
            "image (one UNet call per tile) instead of DIRE's 40-call reconstruction. What the bundled model "
            "was trained on, and how well it transfers to generators it never saw, is in *Model card*."
        )
        gr.Markdown(f"**Default model:** {model_label(default_model)}" + (f" — {why}." if why else "."),
                    elem_id="model-why", elem_classes="small-note")
        with gr.Tab("Detect"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=300):
                    images = gr.Gallery(label=f"Images: drop, browse or paste (up to {MAX_FILES}, "
                                              f"≤ {MAX_FILE_BYTES // 1_000_000} MB each)",
                                        type="filepath", interactive=True, sources=["upload", "clipboard"],
                                        columns=4, height=240, object_fit="cover", elem_id="images")
                    if examples:
                        example_gallery = gr.Gallery(value=examples, label="Examples: click one to try it "
                                                     "(caption = true label)", columns=6, height=200,
                                                     allow_preview=False, object_fit="cover", interactive=False,
                                                     elem_id="examples")
                with gr.Column(scale=2, min_width=260):
                    model = gr.Dropdown(choices=choices, value=default_model, label="Model", elem_id="model")
                    threshold = gr.Slider(0.01, 0.99, value=card_threshold(default_model), step=0.01,
                                          label="Threshold on p(fake) (default: the model card's)", elem_id="threshold")
                    with_dire = gr.Checkbox(label="Show teacher DIRE map (40 more UNet calls per image: slower)")
                    with_robustness = gr.Checkbox(label="Robustness check (re-score after JPEG q75 and 0.5× resize)")
                    with gr.Row():
                        run = gr.Button("Analyze", variant="primary", elem_id="analyze")
                        stop = gr.Button("Cancel", variant="secondary", elem_id="cancel")
            with gr.Column(visible=False) as results_panel:
                table = gr.Dataframe(headers=TABLE_HEADERS,
                                     datatype=["str", "str", "number", "number", "number", "str"], interactive=False,
                                     label="Results", elem_id="verdicts", wrap=True, max_height=420)
                gallery = gr.Gallery(label="Evidence per image (thumbnails below switch between images)", preview=True,
                                     selected_index=0, columns=6, format="png", height=560, object_fit="contain",
                                     buttons=["download", "fullscreen"], elem_id="evidence")
                gr.Markdown(HOW_TO_READ, elem_classes="small-note")
                plot = gr.Image(label="Scores vs threshold", type="filepath", format="png", interactive=False,
                                buttons=["download"], elem_id="scores")
                with gr.Row():
                    report_file = gr.File(label="JSON report (download)", elem_id="report-file")
                    report_json = gr.JSON(label="Report", open=False)
            inputs = [images, model, threshold, with_dire, with_robustness]
            outputs = [table, gallery, plot, report_file, report_json]
            # while a request runs: results panel shown, Analyze disabled (re-enabled after it, or by Cancel)
            busy = {"fn": lambda: (gr.Column(visible=True), gr.Button(interactive=False)),
                    "outputs": [results_panel, run], "queue": False, "api_visibility": "private"}
            idle = {"fn": lambda: gr.Button(interactive=True), "outputs": [run], "queue": False,
                    "api_visibility": "private"}
            run.click(**busy)
            run_event = run.click(detect, inputs, outputs, api_name="detect", concurrency_limit=MAX_WAITING,
                                  concurrency_id="detect")  # the lanes inside detect order the work
            run_event.then(**idle)
            cancels = [run_event]
            if examples:
                picked = example_gallery.select(pick_example, None, [images], api_visibility="private", queue=False)
                picked.then(**busy)
                example_event = picked.then(detect, inputs, outputs, api_visibility="private", concurrency_id="detect")
                example_event.then(**idle)
                cancels.append(example_event)
            stop.click(cancels=cancels, **idle)
        with gr.Tab("Cost"):
            gr.Markdown("DIRE needs a DDIM inversion and reconstruction (2 × 20 UNet calls) per image; DistilDIRE "
                        "one call (per tile); the image-only student none.")
            cost = gr.Markdown(elem_id="cost")
            measure = gr.Button("Measure on this server")
            measure.click(cost_panel, [model], [cost], api_name="cost")
        with gr.Tab("Model card"):
            card = gr.Markdown(elem_id="card")
            model.change(card_markdown, [model], [card], api_name="card")
            model.change(card_threshold, [model], [threshold], api_visibility="private")
            demo.load(card_markdown, [model], [card], api_visibility="private")
    demo.queue(max_size=MAX_WAITING, default_concurrency_limit=1)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--weights", default=AUTO, help="registry name, weights folder, or 'auto' (default): the "
                        "official ImageNet model where its files are here or can be fetched and a GPU is present "
                        "(or DISTILDIRE_OFFICIAL_ON_CPU=1), else the bundled one")
    args = parser.parse_args()
    if args.weights == AUTO:  # may download the official files now, with progress in the server log
        name, why = choose_auto(fetch=True)
    else:
        name, why = args.weights, "chosen by the operator (--weights)"
    print(f"default model: {name} ({why})", flush=True)
    build_demo(name, why).launch(server_name=args.host, server_port=args.port, max_file_size=UPLOAD_LIMIT,
                                    css=CSS, footer_links=["api", "gradio"])


if __name__ == "__main__":
    main()
