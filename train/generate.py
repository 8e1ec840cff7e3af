"""Fresh fakes from the bundled diffusion model, so anyone can test the detector on images it never saw.

    python -m train.generate --n 16 --seed 7 --out fresh_fakes/
    python -m train.generate --n 16 --seed 7 --out fresh_fakes/ --from my_photos/   # + regenerations

Samples are unconditional DDIM samples; with ``--from`` each image of the folder is also
regenerated (resized and centre-cropped to the model size, noised to a random strength, denoised).
Everything is written as PNG.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from detector.models import load_unet
from detector.preprocess import DetectorInputError, load_image, to_model_tensor
from detector.registry import resolve_weights

from .common import save_png, schedule_of, seed_everything, to_uint8
from .sampling import generate_samples, regenerate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=16, help="number of unconditional samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--from", dest="source", help="folder of real images to regenerate as well")
    parser.add_argument("--weights", default="bundled", help="weights whose UNet generates (default: bundled)")
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args(argv)
    spec = resolve_weights(args.weights)
    if spec.unet is None:
        parser.error(f"{args.weights} has no diffusion UNet")
    unet = load_unet(spec.unet).float().eval()
    schedule = schedule_of(spec.unet)
    size = int(unet.config.sample_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    generator = seed_everything(args.seed)
    index = 0
    for images in generate_samples(unet, schedule, args.n, size, args.steps, generator):
        for image in images:
            save_png(image, out / f"sample_{args.seed}_{index:04d}.png")
            index += 1
    regenerated = 0
    if args.source:
        files = sorted(p for p in Path(args.source).iterdir() if p.is_file())
        for path in files:
            try:
                x = to_model_tensor(load_image(path).image, size)
            except DetectorInputError as exc:
                print(f"skipped {path.name}: {exc}")
                continue
            image = regenerate(unet, schedule, to_uint8(x)[None], generator)[0]
            save_png(image, out / f"regen_{path.stem}.png")
            regenerated += 1
    print(f"wrote {index} samples and {regenerated} regenerations to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
