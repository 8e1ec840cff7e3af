"""Stage 7 — examples/ for the README and the web demo: real photos and generated images from sources
whose licence allows redistribution (``REDISTRIBUTABLE``), drawn by a seeded shuffle — never picked by
score, and never only the ones the model gets right. Per class the first ``per_class`` files of the
shuffled order are kept; if none of them is one the shipped model gets wrong but such files exist, the
last one is swapped for the first such file in the same order, so the examples show the model as it
is: each entry records ``model_label`` (what the shipped model says at the card threshold) beside the
true label, and the caption says "missed by this model" where they differ. The manifest also holds
each file's shipped and out-of-fold scores (the latter from the fold model that never saw its generator
family or photo source). Files are copied byte for byte.

    python -m train.examples --config train/configs/bundled.json --out examples/
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from detector import Detector

from .config import RecipeConfig, config_parser, load_config
from .corpus import Record, corpus_records

#: repository (public_corpus) or photo folder → licence under which its files may be redistributed
REDISTRIBUTABLE = {
    "comfyanonymous/ComfyUI_examples": "0BSD-style (ComfyUI_examples LICENSE); model licences apply to the models",
    "leejet/stable-diffusion.cpp": "MIT (repository); model licences apply to the models",
    "apple/ml-stable-diffusion": "MIT (repository); SD weights CreativeML OpenRAIL-M",
    "Kwai-Kolors/Kolors": "Apache-2.0 (repository)",
    "ai-forever/Kandinsky-3": "Apache-2.0",
    "cloneofsimo/lora": "Apache-2.0",
    "real_photos": "as listed per file (GPL-2+, CC0, BSD-3-Clause, CC-BY-2.0, PSF-style)",
}
NOT_REDISTRIBUTABLE_GENERATORS = {"midjourney-v6"}  # the one Midjourney image in Kolors' README: Midjourney ToS


def redistributable(record: Record) -> bool:
    key = record.repo if record.repo else Path(record.path).parent.name
    return key in REDISTRIBUTABLE and record.generator not in NOT_REDISTRIBUTABLE_GENERATORS


def make_examples(cfg: RecipeConfig, out: str | Path, weights: str | Path = "detector/weights", per_class: int = 6,
                  seed: int = 0) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records = corpus_records(cfg)
    metrics = json.loads(cfg.work.metrics.read_text()) if cfg.work.metrics.is_file() else {}
    oof = metrics.get("models", {}).get("student", {}).get("scores", {})
    detector = Detector.from_pretrained(str(weights))
    candidates = [i for i, r in enumerate(records) if redistributable(r)]
    random.Random(seed).shuffle(candidates)
    previous = out / "manifest.json"  # files of an earlier draw go, so examples/ holds exactly this one
    if previous.is_file():
        for entry in json.loads(previous.read_text())["files"]:
            (out / entry["file"]).unlink(missing_ok=True)
    entries = []
    for label, name in ((0, "real"), (1, "fake")):
        order = [i for i in candidates if records[i].label == label]
        results = {}

        def result_of(i: int, results: dict = results):
            if i not in results:
                results[i] = detector.detect_one(records[i].path)
            return results[i]

        chosen = []
        for i in order:  # scored lazily: the shuffled order decides, the score never does
            if len(chosen) == per_class:
                break
            if result_of(i).ok:
                chosen.append(i)
        def wrong(i: int, name: str = name) -> bool:
            return result_of(i).ok and result_of(i).label != name

        if chosen and not any(wrong(i) for i in chosen):
            first_wrong = next((i for i in order if i not in chosen and wrong(i)), None)
            if first_wrong is not None:
                chosen[-1] = first_wrong
        for index in chosen:
            record, result = records[index], result_of(index)
            target = out / f"{name}_{'photo' if label == 0 else record.generator}_{Path(record.path).name}"
            shutil.copyfile(record.path, target)
            entries.append({"file": target.name, "label": name, "model_label": result.label, "generator": record.generator,
                            "source": record.group, "origin": record.origin,
                            "licence": record.licence or REDISTRIBUTABLE.get(record.repo, ""),
                            "bundled_p_fake": round(result.p_fake, 4),
                            "out_of_fold_p_fake": None if oof.get(str(index)) is None else round(oof[str(index)], 4)})
    manifest = {"seed": seed, "threshold": detector.threshold, "files": entries}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    (out / "SOURCES.md").write_text(sources_markdown(manifest))
    return manifest


def sources_markdown(manifest: dict) -> str:
    """examples/SOURCES.md: what each file is, where it comes from, under which licence."""
    misses = sum(1 for e in manifest["files"] if e["model_label"] != e["label"])
    lines = [
        "# Examples: what they are and where they come from",
        "",
        "Written by `python -m train.examples`. Candidates are the corpus files whose source allows redistribution; "
        f"they were shuffled with seed {manifest['seed']} and the first of each class were taken, whatever the model "
        "says about them; where none of those was one the model gets wrong, the last was swapped for the first such "
        "file in the same order, so the examples include the model's mistakes. "
        f"`model says` is the bundled model's label at its card threshold ({manifest['threshold']:.3f}); "
        f"{misses} of {len(manifest['files'])} examples are ones it gets wrong. `out-of-fold p` is the score of the "
        "fold model that never saw the file's generator family or photo source; `bundled p` that of the shipped "
        "model, which was trained on every corpus image, these included (so it is optimistic). Files are "
        "byte-for-byte copies (PNG sources are stored as lossless WebP, pixel-identical).",
        "",
        "| file | label | model says | generator | origin (repository@commit:path) | licence | bundled p | out-of-fold p |",
        "| --- | --- | --- | --- | --- | --- | ---: | ---: |",
    ]
    for e in manifest["files"]:
        oof = "—" if e["out_of_fold_p_fake"] is None else f"{e['out_of_fold_p_fake']:.3f}"
        said = e["model_label"] if e["model_label"] == e["label"] else f"**{e['model_label']}** (missed)"
        lines.append(f"| {e['file']} | {e['label']} | {said} | {e['generator']} | {e['origin']} | {e['licence']} | "
                     f"{e['bundled_p_fake']:.3f} | {oof} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--out", default="examples")
    parser.add_argument("--weights", default="detector/weights")
    args = parser.parse_args()
    manifest = make_examples(load_config(args.config), args.out, args.weights)
    misses = [e["file"] for e in manifest["files"] if e["model_label"] != e["label"]]
    print(f"{len(manifest['files'])} examples; the bundled model gets {len(misses)} wrong: {misses}")


if __name__ == "__main__":
    main()
