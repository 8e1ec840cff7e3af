"""DistilDIRE web demo (Gradio): drop images, get a verdict and p(fake) per image, and see the evidence.

UI only: every computation lives in ``detector/``. Run ``python app.py [--host H --port P --weights NAME]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from functools import lru_cache
from pathlib import Path

import gradio as gr
import numpy as np

from detector import Detector, WeightsNotFoundError
from detector.analysis import build_report, measure_costs, robustness, verdict
from detector.registry import OFFICIAL, official_files_present, resolve_weights
from detector.visualize import evidence_strip

try:  # ZeroGPU on Hugging Face Spaces; a no-op decorator elsewhere
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the host

    def gpu(fn=None, **_):
        return fn if fn is not None else (lambda f: f)


ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
MAX_FILES = 16
MAX_FILE_SIZE = "20mb"
UNSURE_MARGIN = 0.1
MODEL_LABELS = {
    "bundled": "DistilDIRE — bundled (1 UNet call)",
    "bundled-fast": "Image-only fast tier — bundled (0 UNet calls)",
    "distildire-imagenet": "DistilDIRE official — ImageNet/ADM (CC BY-NC)",
    "distildire-celebahq": "DistilDIRE official — CelebA-HQ (CC BY-NC)",
}


def model_choices(default: str) -> list[tuple[str, str]]:
    """Bundled models always; official presets when their files are on this machine, or when
    ``DISTILDIRE_SHOW_OFFICIAL=1`` says the server may download them on first use."""
    names = [default] + [n for n in ("bundled", "bundled-fast") if n != default]
    show_all = os.environ.get("DISTILDIRE_SHOW_OFFICIAL") == "1"
    names += [name for name in OFFICIAL if show_all or official_files_present(name)]
    return [(MODEL_LABELS.get(n, n), n) for n in names]


@lru_cache(maxsize=4)
def get_detector(name: str) -> Detector:
    try:
        return Detector.from_pretrained(name)
    except (WeightsNotFoundError, FileNotFoundError, ValueError) as exc:
        raise gr.Error(f"Model '{name}' cannot be loaded: {exc}", print_exception=False) from None


def _score_plot(rows: list[dict], threshold: float, card: dict, model: str):
    """This batch's scores against the threshold, over the model card's reference histograms."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 2.6), dpi=80, layout="constrained")
    ax = fig.subplots()
    reference = card.get("reference_histograms", {})
    key = {"bundled": "distildire", "bundled-fast": "image-only"}.get(model)
    if key in reference:
        edges = np.array(reference["edges"])
        centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
        colours = {"real": "#4c9f70", "sample": "#d1495b", "regen": "#edae49"}
        for kind, counts in reference[key].items():
            counts = np.array(counts, dtype=float)
            if counts.sum():
                ax.bar(centres, counts / counts.sum(), width=width, alpha=0.35, color=colours.get(kind),
                       label=f"reference {kind} (test split)")
    ax.axvspan(threshold - UNSURE_MARGIN, threshold + UNSURE_MARGIN, color="grey", alpha=0.12, label="unsure band")
    ax.axvline(threshold, color="black", lw=1.2, label=f"threshold {threshold:.2f}")
    scored = [r for r in rows if r["p_fake"] is not None]
    top = ax.get_ylim()[1] if reference.get(key) else 1.0
    for i, r in enumerate(scored):
        ax.plot(r["p_fake"], top * (0.9 - 0.8 * i / max(1, len(scored))), "v", color="#222", ms=8)
        ax.annotate(Path(r["file"]).name[:18], (r["p_fake"], top * (0.9 - 0.8 * i / max(1, len(scored)))),
                    fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set(xlim=(0, 1), xlabel="p(fake)", yticks=[], title="Scores of this batch")
    ax.legend(fontsize=7, loc="upper center", ncols=3, bbox_to_anchor=(0.5, -0.28), frameon=False)
    return fig


def _collect(files, single) -> list[tuple[str, str]]:
    paths = [str(f) for f in (files or [])]
    if single:
        paths.append(str(single))
    return [(p, Path(p).name) for p in paths]


@gpu(duration=60)
def detect(files, single, model: str, threshold: float, with_dire: bool, with_robustness: bool,
           progress=gr.Progress()):
    """Classify the uploaded images. Returns the results table, the evidence gallery, the score plot,
    the JSON report file and the report itself."""
    items = _collect(files, single)
    if not items:
        raise gr.Error("Add at least one image (drop files, or use the single-image pane).", print_exception=False)
    if len(items) > MAX_FILES:
        raise gr.Error(f"At most {MAX_FILES} images per request ({len(items)} given).", print_exception=False)
    progress(0.05, desc="loading model")
    detector = get_detector(model)
    paths = [p for p, _ in items]
    names = [n for _, n in items]
    progress(0.2, desc="DDIM inversion + reconstruction (40 UNet calls per image)" if with_dire else "scoring")
    results = detector.detect(paths, with_dire=with_dire and detector.unet is not None)
    for name, result in zip(names, results):
        result.source = name  # never echo the server's temporary paths
    robust = None
    if with_robustness:
        progress(0.7, desc="robustness re-checks")
        robust = robustness(detector, paths, results)
    report = build_report(detector, paths, results, names, robust, UNSURE_MARGIN)
    for entry in report["files"]:  # the slider's threshold, not the card's, decides here
        entry["verdict"] = verdict(entry["p_fake"], threshold, UNSURE_MARGIN)
    report["threshold_used"] = threshold

    table = []
    for entry in report["files"]:
        flips = ""
        if entry.get("robustness"):
            flipped = [k for k, v in entry["robustness"].items() if v["flips"]]
            flips = "verdict flips: " + ", ".join(flipped) if flipped else "stable"
        table.append([entry["file"], entry["verdict"].upper(),
                      None if entry["p_fake"] is None else round(entry["p_fake"], 4),
                      entry["unet_calls"], round(entry["timings_ms"].get("total", 0), 1) if entry["p_fake"] is not None else None,
                      entry["error"] or flips])
    gallery = []
    for name, result in zip(names, results):
        if result.ok:
            label = f"{name}: {verdict(result.p_fake, threshold, UNSURE_MARGIN)} (p_fake = {result.p_fake:.3f})"
            gallery.append((evidence_strip(result), label))
    plot = _score_plot(report["files"], threshold, detector.card, model)
    report_path = Path(tempfile.mkdtemp(prefix="distildire-")) / "distildire_report.json"
    report_path.write_text(json.dumps(report, indent=2))
    progress(1.0)
    return table, gallery, plot, str(report_path), report


def cost_panel(model: str) -> str:
    detector = get_detector(model)
    costs = measure_costs(detector)
    lines = [f"Measured on this server ({costs['device']}, {costs['image_size']} px, batch 1):", "",
             "| pipeline | UNet calls | ms / image |", "| --- | ---: | ---: |"]
    for name, entry in costs["pipelines"].items():
        lines.append(f"| {name} | {entry['unet_calls']} | {'—' if entry['ms'] is None else entry['ms']} |")
    return "\n".join(lines)


def card_markdown(model: str) -> str:
    spec = resolve_weights(model)
    card = spec.card
    out = [f"### {MODEL_LABELS.get(model, model)}", card.get("description", ""), "",
           f"**Licence:** {spec.license}", ""]
    metrics = card.get("metrics", {}).get("models", {})
    if metrics:
        out += ["**Test-split metrics** (photos never seen in training; fakes from the bundled diffusion model):", "",
                "| model | UNet calls | AP | ACC | FPR | AP after JPEG q75 | AP after 0.5× resize | ECE |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, m in metrics.items():
            clean = m["clean"]
            jpeg = m.get("jpeg75", {}).get("ap")
            resize = m.get("resize0.5", {}).get("ap")
            out.append(f"| {name} | {m.get('unet_calls')} | {clean['ap']:.3f} | {clean['acc']:.3f} | {clean['fpr']:.3f} | "
                       f"{'—' if jpeg is None else f'{jpeg:.3f}'} | {'—' if resize is None else f'{resize:.3f}'} | {clean['ece']:.3f} |")
    if card.get("limits"):
        out += ["", "**What it can and cannot detect:**", ""] + [f"- {line}" for line in card["limits"]]
    data = card.get("data")
    if data:
        out += ["", f"**Data:** {json.dumps(data.get('photos_per_split'))} photos per split; {data.get('fakes', '')}"]
    out += ["", "**Official weights:** put `imagenet-distil-dire-11e.pth` (or `celebahq-distil-dire-34e.pth`, from "
            "huggingface.co/yevvonlim/distildire) and `256x256_diffusion_uncond.pt` (openai/guided-diffusion) in "
            "`~/.cache/distildire/`, or run online, then choose the official model here or use "
            "`Detector.from_pretrained('distildire-imagenet')`."]
    return "\n".join(out)


def example_rows() -> tuple[list[list], list[str]]:
    manifest = EXAMPLES / "manifest.json"
    if not manifest.is_file():
        return [], []
    entries = json.loads(manifest.read_text())
    return [[str(EXAMPLES / e["file"])] for e in entries], [f"{e['label']}: {e['kind']}" for e in entries]


CSS = """
#verdicts table td:nth-child(2) { font-weight: 600; }
.small-note { font-size: 0.85em; opacity: 0.8; }
"""


def build_demo(default_model: str = "bundled") -> gr.Blocks:
    choices = model_choices(default_model)
    with gr.Blocks(title="DistilDIRE detector", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# DistilDIRE — was this image made by a diffusion model?\n"
            "Drop images to get **p(fake)** and a verdict per image. DistilDIRE reads the noise **ε** a diffusion "
            "UNet predicts for the image at t = 0 (**one** UNet call) instead of DIRE's 40-call reconstruction; "
            "tick *teacher DIRE* to see that reconstruction too. Scores near the threshold are reported as "
            "**unsure**. The bundled model knows only its own small diffusion model (see *Model card*)."
        )
        with gr.Tab("Detect"):
            with gr.Row():
                with gr.Column(scale=3):
                    files = gr.File(label=f"Images (drag and drop up to {MAX_FILES}, ≤ {MAX_FILE_SIZE} each)",
                                    file_count="multiple", file_types=["image"], elem_id="batch-files")
                    single = gr.Image(label="…or one image (upload / paste)", type="filepath", image_mode=None,
                                      sources=["upload", "clipboard"], height=180, elem_id="single-image")
                with gr.Column(scale=2):
                    model = gr.Dropdown(choices=choices, value=default_model, label="Model", elem_id="model")
                    threshold = gr.Slider(0.05, 0.95, value=0.5, step=0.01, label="Threshold on p(fake)")
                    with_dire = gr.Checkbox(label="Show teacher DIRE map (40 more UNet calls per image: slower)")
                    with_robustness = gr.Checkbox(label="Robustness check (re-score after JPEG q75 and 0.5× resize)")
                    run = gr.Button("Analyze", variant="primary", elem_id="analyze")
            table = gr.Dataframe(headers=["file", "verdict", "p_fake", "UNet calls", "ms", "notes"],
                                 datatype=["str", "str", "number", "number", "number", "str"], interactive=False,
                                 label="Results", elem_id="verdicts", wrap=True,
                                 column_widths=["30%", "10%", "10%", "10%", "8%", "32%"])
            gallery = gr.Gallery(label="Evidence per image: model input | ε at t=0 (±3 → 0…255) | DDIM reconstruction | "
                                       "DIRE ×8 (last two with 'teacher DIRE')",
                                 columns=4, format="png", height=380, preview=True, object_fit="contain", elem_id="evidence")
            plot = gr.Plot(label="Scores vs threshold", format="png")
            with gr.Row():
                report_file = gr.File(label="JSON report", elem_id="report-file")
                report_json = gr.JSON(label="Report", open=False)
            rows, labels = example_rows()
            if rows:
                gr.Examples(rows, inputs=[single], example_labels=labels, label="Examples (true label: source)",
                            examples_per_page=12)
            run.click(detect, [files, single, model, threshold, with_dire, with_robustness],
                      [table, gallery, plot, report_file, report_json], api_name="detect", concurrency_id="model",
                      concurrency_limit=1)
        with gr.Tab("Cost"):
            gr.Markdown("DIRE needs a DDIM inversion and reconstruction (2 × 20 UNet calls) per image; DistilDIRE "
                        "one call; the image-only student none.")
            cost = gr.Markdown(elem_id="cost")
            measure = gr.Button("Measure on this server")
            measure.click(cost_panel, [model], [cost], api_name="cost", concurrency_id="model")
        with gr.Tab("Model card"):
            card = gr.Markdown(elem_id="card")
            model.change(card_markdown, [model], [card], api_name="card")
            demo.load(card_markdown, [model], [card], api_visibility="private")
    demo.queue(max_size=32, default_concurrency_limit=1)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", 7860)))
    parser.add_argument("--weights", default="bundled", help="registry name or weights folder for the default model")
    args = parser.parse_args()
    build_demo(args.weights).launch(server_name=args.host, server_port=args.port, max_file_size=MAX_FILE_SIZE,
                                    css=CSS, footer_links=["api", "gradio"])


if __name__ == "__main__":
    main()
