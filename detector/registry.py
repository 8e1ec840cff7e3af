"""The one place that resolves weights: a name or a folder → files on disk plus their model card.

Names:

* ``bundled`` — the DistilDIRE student and the small diffusion UNet in ``detector/weights/``
  (trained here by ``train/``; see ``detector/weights/card.json``);
* ``bundled-fast`` — the bundled image-only student (no UNet at inference);
* ``distildire-imagenet`` / ``distildire-celebahq`` — the official checkpoints (CC BY-NC 4.0) from the
  Hugging Face repo ``yevvonlim/distildire`` plus OpenAI's ADM ``256x256_diffusion_uncond.pt``;
  looked up in the local caches first, downloaded when online.

A folder laid out like ``detector/weights/`` (a ``card.json`` naming its files) works as well.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

BUNDLED_DIR = Path(__file__).resolve().parent / "weights"

OFFICIAL_REPO = "yevvonlim/distildire"
#: The hub repository has no tagged release; "main" is what the authors' README points to.
OFFICIAL_REVISION = os.environ.get("DISTILDIRE_OFFICIAL_REVISION", "main")
ADM_FILENAME = "256x256_diffusion_uncond.pt"
ADM_URL = f"https://openaipublic.blob.core.windows.net/diffusion/jul-2021/{ADM_FILENAME}"


class WeightsNotFoundError(FileNotFoundError):
    """Weights that are not on this machine and could not be fetched; the message says what to do."""


@dataclass
class WeightsSpec:
    """Everything a ``Detector`` needs to know about one set of weights."""

    name: str
    student: Path
    unet: Path | None  # None: an image-only student
    image_size: int | None = None  # None: the UNet's sample_size
    threshold: float = 0.5
    inputs: str = "image+eps"
    license: str = "unknown"
    card: dict = field(default_factory=dict)
    preprocessing: dict | None = None  # {"mode": "resize-center-crop"} (default) or {"mode": "tiles", ...}
    calibration: dict | None = None  # {"temperature": T, "bias": b}: p = σ(z / T + b)


@dataclass(frozen=True)
class OfficialEntry:
    filename: str
    description: str


OFFICIAL = {
    "distildire-imagenet": OfficialEntry("imagenet-distil-dire-11e.pth", "DistilDIRE trained on DiffusionForensics ImageNet (ADM fakes)"),
    "distildire-celebahq": OfficialEntry("celebahq-distil-dire-34e.pth", "DistilDIRE trained on DiffusionForensics CelebA-HQ (SD-v2 fakes)"),
}
BUNDLED = {"bundled": "distildire", "bundled-fast": "image-only"}


def available_names() -> list[str]:
    return [*BUNDLED, *OFFICIAL]


def _spec_from_folder(folder: Path, variant: str | None, name: str) -> WeightsSpec:
    card_path = folder / "card.json"
    if not card_path.is_file():
        raise WeightsNotFoundError(f"{folder} has no card.json; expected a weights folder like detector/weights/")
    card = json.loads(card_path.read_text())
    variants = card.get("variants", {})
    if not variants:
        raise WeightsNotFoundError(f"{card_path} lists no model variants")
    variant = variant or card.get("default_variant") or next(iter(variants))
    if variant not in variants:
        raise WeightsNotFoundError(f"{card_path} has no variant {variant!r} (has: {', '.join(variants)})")
    entry = variants[variant]
    student = folder / entry["student"]
    unet = folder / entry["unet"] if entry.get("unet") else None
    for path in filter(None, (student, unet)):
        if not path.exists():
            raise WeightsNotFoundError(f"{path} is listed in {card_path} but missing")
    return WeightsSpec(
        name=name,
        student=student,
        unet=unet,
        image_size=entry.get("image_size", card.get("image_size")),
        threshold=float(entry.get("threshold", card.get("threshold", 0.5))),
        inputs=entry.get("inputs", "image+eps"),
        license=card.get("license", "unknown"),
        card=card,
        preprocessing=entry.get("preprocessing", card.get("preprocessing")),
        calibration=entry.get("calibration"),
    )


def cache_dir() -> Path:
    """Where official checkpoints are looked for and downloaded to ($DISTILDIRE_CACHE)."""
    return Path(os.environ.get("DISTILDIRE_CACHE", Path.home() / ".cache" / "distildire"))


def official_files_present(name: str) -> bool:
    """Whether an official preset's student and ADM files are already on this machine (no network)."""
    from huggingface_hub import try_to_load_from_cache

    filename = OFFICIAL[name].filename
    student = (cache_dir() / filename).is_file() or isinstance(
        try_to_load_from_cache(OFFICIAL_REPO, filename, revision=OFFICIAL_REVISION), str)
    return student and (cache_dir() / ADM_FILENAME).is_file()


def _official_file(filename: str) -> Path:
    """The checkpoint from the local caches, or from the hub when online."""
    local = cache_dir() / filename
    if local.is_file():
        return local
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(OFFICIAL_REPO, filename, revision=OFFICIAL_REVISION, local_files_only=True))
    except Exception:
        pass
    try:
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
            raise ConnectionError("HF_HUB_OFFLINE is set")
        return Path(hf_hub_download(OFFICIAL_REPO, filename, revision=OFFICIAL_REVISION))
    except Exception as exc:
        raise WeightsNotFoundError(_offline_message(filename, exc)) from None


def _adm_file() -> Path:
    local = cache_dir() / ADM_FILENAME
    if local.is_file():
        return local
    import torch

    try:
        local.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(ADM_URL, str(local), progress=True)
    except Exception as exc:
        local.unlink(missing_ok=True)
        raise WeightsNotFoundError(_offline_message(ADM_FILENAME, exc, url=ADM_URL)) from None
    return local


def _offline_message(filename: str, exc: Exception, url: str | None = None) -> str:
    where = url or f"https://huggingface.co/{OFFICIAL_REPO} (revision {OFFICIAL_REVISION})"
    return (
        f"could not obtain {filename} ({type(exc).__name__}: {exc}). Download it from {where} on a machine "
        f"with internet access and either put it in {cache_dir()} (or $DISTILDIRE_CACHE), or pass local paths: "
        f"Detector.from_files(student='imagenet-distil-dire-11e.pth', unet='{ADM_FILENAME}') / "
        f"python -m detector scan --student FILE --unet FILE"
    )


def resolve_weights(name_or_dir: str | os.PathLike = "bundled", variant: str | None = None) -> WeightsSpec:
    """A registry name or a weights folder (``variant``: one of its card's variants, default the
    card's ``default_variant``) → a ``WeightsSpec`` whose files exist locally."""
    key = str(name_or_dir)
    if key in BUNDLED:
        if not (BUNDLED_DIR / "card.json").is_file():
            raise WeightsNotFoundError(
                "the bundled weights are not in this checkout yet (detector/weights/card.json is missing). "
                "They are produced by the training recipe in train/ (see README); meanwhile pass your own "
                "files with Detector.from_files(student=..., unet=...) or a weights folder."
            )
        return _spec_from_folder(BUNDLED_DIR, BUNDLED[key], key)
    if key in OFFICIAL:
        entry = OFFICIAL[key]
        return WeightsSpec(
            name=key,
            student=_official_file(entry.filename),
            unet=_adm_file(),
            image_size=256,
            threshold=0.5,
            preprocessing={"mode": "resize-center-crop", "size": 256},
            license="CC BY-NC 4.0 (DistilDIRE weights); MIT (ADM, openai/guided-diffusion)",
            card={"description": entry.description, "source": f"{OFFICIAL_REPO}/{entry.filename}"},
        )
    path = Path(key).expanduser()
    if path.is_dir():
        return _spec_from_folder(path, variant, f"{path.name}:{variant}" if variant else path.name)
    raise WeightsNotFoundError(f"unknown weights {key!r}: use one of {', '.join(available_names())} or a weights folder")


def save_weights(
    folder: str | os.PathLike,
    students: dict[str, tuple[object, str]],
    unet: object | None = None,
    card: dict | None = None,
    schedule: object | None = None,
) -> Path:
    """Write a weights folder that ``resolve_weights`` reads: ``{variant}.safetensors`` per student
    (``students = {variant: (model, inputs)}``, inputs as in ``INPUT_KINDS``), ``unet/`` (diffusers,
    safetensors, with ``scheduler_config.json``) and ``card.json`` (``card`` plus the variant table;
    ``card["variants"][name]`` may carry that variant's threshold, calibration and preprocessing)."""
    from safetensors.torch import save_file

    from .ddim import Schedule

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    variants = {}
    for variant, (model, inputs) in students.items():
        filename = f"{variant}.safetensors"
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(folder / filename), metadata={"inputs": inputs})
        needs_unet = inputs == "image+eps"
        variants[variant] = {"student": filename, "unet": "unet" if needs_unet else None, "inputs": inputs}
    if unet is not None:
        unet.save_pretrained(folder / "unet", safe_serialization=True)
        sched = schedule or Schedule()
        (folder / "unet" / "scheduler_config.json").write_text(json.dumps(sched.to_scheduler_config(), indent=2))
    card = dict(card or {})
    given = card.get("variants", {})  # per-variant settings (threshold, calibration, …) kept beside the files
    card["variants"] = {**given, **{name: {**given.get(name, {}), **files} for name, files in variants.items()}}
    if unet is not None:
        card.setdefault("image_size", int(unet.config.sample_size))
    card.setdefault("default_variant", next(iter(variants)))
    (folder / "card.json").write_text(json.dumps(card, indent=2))
    return folder
