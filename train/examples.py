"""Stage 10 — examples/ for the README and the web demo: real images from the TEST photos only
(whole photos downscaled as a user would upload them, and 64 px test patches) and generated ones from
the test split (unconditional samples and regenerations of test patches), picked by a seeded shuffle
(not by score), with a manifest of true labels and the bundled model's verdicts.

    python -m train.examples --config train/configs/bundled.json --out examples/
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from PIL import Image

from detector import Detector

from .config import RecipeConfig, config_parser, load_config
from .data import list_samples


def make_examples(cfg: RecipeConfig, out: str | Path, weights: str | Path = "detector/weights", per_kind: int = 4,
                  seed: int = 0) -> list[dict]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    manifest = json.loads((Path(cfg.workdir) / "data" / "manifest.json").read_text())
    entries: list[dict] = []
    for name in rng.sample(manifest["splits"]["test"], min(per_kind, len(manifest["splits"]["test"]))):
        image = Image.open(Path(cfg.data.photos) / name).convert("RGB")
        image.thumbnail((512, 512), Image.LANCZOS)
        target = out / f"real_photo_{Path(name).stem}.jpg"
        image.save(target, quality=90)
        entries.append({"file": target.name, "label": "real", "kind": "test photo, downscaled to 512 px, JPEG q90",
                        "source": name})
    test = list_samples(Path(cfg.workdir) / "data", "test")
    for kind, label, prefix in (("real", "real", "real_patch"), ("sample", "fake", "fake_sample"), ("regen", "fake", "fake_regen")):
        pool = sorted(s.path for s in test if s.kind == kind)
        for path in rng.sample(pool, per_kind):
            target = out / f"{prefix}_{path.stem}.png"
            shutil.copyfile(path, target)
            entries.append({"file": target.name, "label": label, "kind": {"real": "64 px test patch", "sample":
                            "unconditional DDIM sample", "regen": "SDEdit regeneration of a test patch"}[kind]})
    detector = Detector.from_pretrained(str(weights))
    for entry, result in zip(entries, detector.detect([out / e["file"] for e in entries])):
        entry["bundled_p_fake"] = round(result.p_fake, 4)
        entry["bundled_verdict"] = result.label
    (out / "manifest.json").write_text(json.dumps(entries, indent=2))
    return entries


def main() -> None:
    parser = config_parser(__doc__)
    parser.add_argument("--out", default="examples")
    parser.add_argument("--weights", default="detector/weights")
    args = parser.parse_args()
    entries = make_examples(load_config(args.config), args.out, args.weights)
    correct = sum(e["label"] == e["bundled_verdict"] for e in entries)
    print(f"{len(entries)} examples, {correct} classified as labelled by the bundled model")


if __name__ == "__main__":
    main()
