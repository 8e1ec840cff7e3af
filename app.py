"""DistilDIRE web demo (Gradio): drop images, get a verdict and p(fake) per image, and see the evidence.

The page only: layout, wiring and formatting. Every request goes to ``detector.serving.Server.analyze``;
model cards come from ``detector.card``. Run ``python app.py [--host H --port P --weights NAME]``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import gradio as gr

from detector.card import card_markdown, model_choices, model_label
from detector.serving import TABLE_HEADERS, RequestError, Server, default_model

try:  # ZeroGPU on Hugging Face Spaces; a no-op decorator elsewhere
    import spaces

    gpu = spaces.GPU
except ImportError:  # pragma: no cover - depends on the host

    def gpu(fn=None, **_):
        return fn if fn is not None else (lambda f: f)


ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
UI = ROOT / "ui"
UPLOAD_LIMIT = "200mb"  # Gradio's hard cap per uploaded file, far above the server's per-file limit
MAX_WAITING = 32
SLIDER_STEP = 0.01
SERVER = Server()
VERDICT_COLOURS = {  # translucent, so they read on light and dark backgrounds alike
    "FAKE": "rgba(209, 73, 91, 0.28)", "NO SIGN FOUND": "rgba(76, 159, 112, 0.28)",
    "UNSURE": "rgba(230, 170, 40, 0.32)", "ERROR": "rgba(128, 128, 128, 0.28)",
}


def card_threshold(model: str) -> float:
    """The model card's threshold (the authors' 0.5 for the official presets), as the slider shows it."""
    config = SERVER.config(model)
    return round(config.policy.threshold if config and config.policy else 0.5, 2)


def _threshold(model: str, slider: float) -> float | None:
    """The slider's threshold, or None (= the card's exact threshold) where the slider shows the card's
    value rounded to its step: the page and the CLI then judge every image alike."""
    return None if abs(float(slider) - card_threshold(model)) < SLIDER_STEP / 10 else float(slider)


def _paths(images) -> list[str]:
    """The upload area's value (Gradio hands a gallery over as ``[(path, caption), …]``)."""
    return [str(item[0] if isinstance(item, (list, tuple)) else item) for item in images or []]


def _styled(rows: list[list]):
    """The results table with each verdict cell coloured by its verdict (a pandas Styler; the API still
    receives plain data)."""
    import pandas as pd

    frame = pd.DataFrame(rows, columns=TABLE_HEADERS, dtype=object)  # object: a missing score stays None
    styled = frame.style.map(lambda v: f"background-color: {VERDICT_COLOURS.get(v, 'transparent')}", subset=["verdict"])
    return styled.format({"p_fake": "{:.4f}", "ms": "{:.0f}"}, na_rep="")  # the data keeps full values


@gpu(duration=60)
def detect(images, model: str, threshold: float, with_dire: bool, with_robustness: bool,
           progress=gr.Progress(track_tqdm=True), request: gr.Request = None):  # noqa: B008 (Gradio injects both)
    """Classify the uploaded images: the results table, the evidence gallery, the score plot, the JSON
    report file, the report itself and what a low score is worth. A bad or oversized file gets an error
    row of its own; Cancel (``cancel``) stops the server's work for this page."""
    try:
        analysis = SERVER.analyze(_paths(images), model, _threshold(model, threshold), bool(with_dire),
                                  bool(with_robustness), lambda fraction, text: progress(fraction, desc=text),
                                  session=getattr(request, "session_hash", None))
    except RequestError as exc:
        raise gr.Error(str(exc), print_exception=False) from None
    for notice in analysis.notices:
        gr.Warning(notice)
    return (_styled(analysis.table), analysis.pictures, analysis.plot_path, analysis.report_path, analysis.report,
            analysis.caveat)


def cancel(request: gr.Request = None) -> None:
    """Stop this page's running request on the server (not only in the browser)."""
    if request is not None and request.session_hash:
        SERVER.cancel(request.session_hash)


def cost_panel(model: str) -> str:
    try:
        costs = SERVER.costs(model)
    except RequestError as exc:
        return str(exc)
    parts, engines = {"student": "student", "eps_unet": "ε UNet", "dire_unet": "DIRE UNet"}, {"onnxruntime": "ONNX Runtime",
                                                                                              "torch": "PyTorch"}
    runs = "; ".join(f"{engines[engine]} runs the " + ", ".join(parts[p] for p, e in costs["runtime"].items() if e == engine)
                     for engine in engines if engine in costs["runtime"].values())
    lines = [f"Measured on this server ({costs['device']}, {costs['image_size']} px, batch 1; {runs}):", "",
             "| pipeline | UNet calls | ms / image |", "| --- | ---: | ---: |"]
    for name, entry in costs["pipelines"].items():
        lines.append(f"| {name} | {entry['unet_calls']} | {'—' if entry['ms'] is None else entry['ms']} |")
    return "\n".join(lines)


def example_items() -> list[tuple[str, str]]:
    """(path, caption) of the shipped examples; the caption states the true label and its source, and
    says so first where the bundled model gets the example wrong (the examples include its mistakes)."""
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
    return [(example_items()[evt.index][0], None)]


def build_demo(default_model_name: str = "bundled", why: str | None = None) -> gr.Blocks:
    """The page; ``why`` says on it why ``default_model_name`` runs by default."""
    examples = example_items()
    limits = SERVER.limits
    with gr.Blocks(title="DistilDIRE detector", delete_cache=(900, 900)) as demo:  # uploads kept 15 min
        gr.Markdown(
            "# DistilDIRE — was this image made by a diffusion model?\n"
            "Drop, browse or paste images, or click an example, then **Analyze**: you get **p(fake)**, a verdict "
            "and the evidence per image. DistilDIRE reads the noise **ε** a diffusion UNet predicts for the "
            "image (one UNet call per tile) instead of DIRE's DDIM inversion and reconstruction. What the bundled "
            "model was trained on, and how well it transfers to generators it never saw, is in *Model card*.")
        gr.Markdown(f"**Default model:** {model_label(default_model_name)}" + (f" — {why}." if why else "."),
                    elem_id="model-why", elem_classes="small-note")
        with gr.Tab("Detect"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=300):
                    images = gr.Gallery(label=f"Images: drop, browse or paste (up to {limits.max_files}, "
                                              f"≤ {limits.max_file_bytes // 1_000_000} MB each)",
                                        type="filepath", interactive=True, sources=["upload", "clipboard"],
                                        columns=4, height="auto", object_fit="cover", elem_id="images")
                    if examples:
                        example_gallery = gr.Gallery(value=examples, label="Examples: click one to try it "
                                                     "(caption = true label)", columns=6, height=250,
                                                     allow_preview=False, object_fit="cover", interactive=False,
                                                     elem_id="examples")
                with gr.Column(scale=2, min_width=260):
                    model = gr.Dropdown(choices=model_choices(default_model_name), value=default_model_name,
                                        label="Model", elem_id="model")
                    threshold = gr.Slider(0.01, 0.99, value=card_threshold(default_model_name), step=SLIDER_STEP,
                                          label="Threshold on p(fake) (default: the model card's)", elem_id="threshold")
                    with_dire = gr.Checkbox(label="Show teacher DIRE map (DDIM inversion + reconstruction: many more "
                                                  "UNet calls per image, slower)")
                    with_robustness = gr.Checkbox(label="Robustness check (re-score after JPEG q75 and 0.5× resize)")
                    with gr.Row():
                        run = gr.Button("Analyze", variant="primary", elem_id="analyze")
                        stop = gr.Button("Cancel", variant="secondary", elem_id="cancel")
            with gr.Column(visible=False) as results_panel:
                table = gr.Dataframe(headers=TABLE_HEADERS,
                                     datatype=["str", "str", "number", "number", "number", "str", "str"],
                                     interactive=False,
                                     label="Results", elem_id="verdicts", wrap=True, max_height=420)
                caveat = gr.Markdown(elem_id="caveat", elem_classes="small-note")
                gallery = gr.Gallery(label="Evidence per image (thumbnails below switch between images)", preview=True,
                                     selected_index=0, columns=6, format="png", height=560, object_fit="contain",
                                     buttons=["download", "fullscreen"], elem_id="evidence")
                gr.Markdown((UI / "how_to_read.md").read_text(), elem_classes="small-note")
                plot = gr.Image(label="Scores vs threshold", type="filepath", format="png", interactive=False,
                                buttons=["download"], elem_id="scores")
                with gr.Row():
                    report_file = gr.File(label="JSON report (download)", elem_id="report-file")
                    report_json = gr.JSON(label="Report", open=False)
            inputs = [images, model, threshold, with_dire, with_robustness]
            outputs = [table, gallery, plot, report_file, report_json, caveat]
            # while a request runs: results panel shown, Analyze disabled (re-enabled after it, or by Cancel)
            busy = {"fn": lambda: (gr.Column(visible=True), gr.Button(interactive=False)),
                    "outputs": [results_panel, run], "queue": False, "api_visibility": "private"}
            idle = {"fn": lambda: gr.Button(interactive=True), "outputs": [run], "queue": False,
                    "api_visibility": "private"}
            run.click(**busy)
            run_event = run.click(detect, inputs, outputs, api_name="detect", concurrency_limit=MAX_WAITING,
                                  concurrency_id="detect")  # the lanes inside the server order the work
            run_event.then(**idle)
            run_event.failure(**idle)  # the button comes back after an error too
            cancels = [run_event]
            if examples:
                picked = example_gallery.select(pick_example, None, [images], api_visibility="private", queue=False)
                picked.then(**busy)
                example_event = picked.then(detect, inputs, outputs, api_visibility="private", concurrency_id="detect",
                                            concurrency_limit=MAX_WAITING)  # else the group's limit falls to 1
                example_event.then(**idle)
                example_event.failure(**idle)
                cancels.append(example_event)
            stop.click(cancel, None, None, queue=False, api_name="cancel",  # stops the server's work for the session
                       api_visibility="undocumented")
            stop.click(cancels=cancels, **idle)
        with gr.Tab("Cost"):
            gr.Markdown("DIRE needs a DDIM inversion and reconstruction per image; DistilDIRE one UNet call (per "
                        "tile); the image-only student none. The model card states the counts for each model.")
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


def launch_options() -> dict:
    """What ``launch`` needs besides the address: upload cap, CSS, the Ctrl+V paste script, footer."""
    return {"max_file_size": UPLOAD_LIMIT, "css": (UI / "style.css").read_text(),
            "head": f"<script>{(UI / 'paste.js').read_text()}</script>", "footer_links": ["api", "gradio"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--weights", default="auto", help="registry name, weights folder, or 'auto' (default): the "
                        "official ImageNet model where its files are here or can be fetched and a GPU is present "
                        "(or DISTILDIRE_OFFICIAL_ON_CPU=1), else the bundled one")
    args = parser.parse_args()
    name, why = default_model(args.weights)
    print(f"default model: {name} ({why})", flush=True)
    build_demo(name, why).launch(server_name=args.host, server_port=args.port, **launch_options())


if __name__ == "__main__":
    main()
