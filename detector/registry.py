"""The one place that resolves weights, timm-style: a table of entries that lists and describes models
from metadata alone (no file or network I/O), and ``resolve`` that turns a name into files on disk.

Names:

* ``bundled`` — the DistilDIRE student and the small diffusion UNet in ``detector/weights/``
  (trained here by ``train/``; see ``detector/weights/card.json``);
* ``bundled-fast`` — the bundled image-only student (no UNet at inference);
* ``distildire-imagenet`` / ``distildire-celebahq`` — the official checkpoints (CC BY-NC 4.0) from the
  Hugging Face repo ``yevvonlim/distildire`` plus OpenAI's ADM ``256x256_diffusion_uncond.pt``;
  looked up in the local caches first; ``download`` (``python -m detector download NAME``) fetches them.
* ``auto`` — ``choose_auto()``: the official ImageNet model where it can run well, else ``bundled``.

A folder laid out like ``detector/weights/`` (a ``card.json`` naming its files) works as well.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .config import OFFICIAL_THRESHOLD, ModelConfig
from .ddim import Schedule
from .tiling import TilingConfig
from .verdict import VerdictPolicy

BUNDLED_DIR = Path(__file__).resolve().parent / "weights"

OFFICIAL_REPO = "yevvonlim/distildire"
#: The hub repository has no tagged release and no commit id could be checked from here, so "main" is
#: what is fetched; an operator pins a commit with $DISTILDIRE_OFFICIAL_REVISION (and preload_from_hub).
OFFICIAL_REVISION = os.environ.get("DISTILDIRE_OFFICIAL_REVISION", "main")
ADM_FILENAME = "256x256_diffusion_uncond.pt"
ADM_URL = f"https://openaipublic.blob.core.windows.net/diffusion/jul-2021/{ADM_FILENAME}"
AUTO = "auto"


class WeightsNotFoundError(FileNotFoundError):
    """Weights that are not on this machine and could not be fetched; the message says what to do."""


@dataclass(frozen=True)
class WeightsSpec:
    """A model's config and its files on this machine: everything ``Detector`` needs."""

    config: ModelConfig
    student: Path
    unet: Path | None  # the ε network; None: an image-only student
    card: dict = field(default_factory=dict)  # the folder's card.json (metrics, limits, data), {} for presets
    variant: str | None = None  # which of the card's variants
    dire_unet: Path | None = None  # the diffusion UNet of the DIRE map when it is not ``unet`` (a distilled ε network)

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file of a registry entry: where it comes from and, where known, what it is."""

    filename: str
    role: str  # "student" | "unet"
    repo: str | None = None  # a Hugging Face model repo (fetched with huggingface_hub) ...
    url: str | None = None  # ... or a plain HTTPS URL
    revision: str = "main"
    approx_mb: float | None = None  # for the size shown before a download; not checked
    sha256: str | None = None  # checked after download where known

    @property
    def origin(self) -> str:
        return self.url or f"https://huggingface.co/{self.repo} ({self.filename}, revision {self.revision})"


@dataclass(frozen=True)
class ModelEntry:
    """One registry model: its ``ModelConfig`` and where its files come from — enough to list, describe and
    cost it without touching a file. A bundled entry's policy and calibration are its card's
    (``model_config`` reads them); ``tests/test_registry.py`` pins the rest of it against the card."""

    config: ModelConfig
    files: tuple[RemoteFile, ...] = ()  # empty: shipped inside the package
    bundled_variant: str | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def label(self) -> str:
        return self.config.label

    @property
    def download_mb(self) -> float:
        return sum(f.approx_mb or 0.0 for f in self.files)

    def to_dict(self) -> dict:
        return {**self.config.to_dict(), "files": [{**asdict(f), "from": f.origin} for f in self.files]}


_OFFICIAL_LICENSE = "CC BY-NC 4.0 (DistilDIRE weights); MIT (ADM, openai/guided-diffusion)"
_ADM = RemoteFile(ADM_FILENAME, "unet", url=ADM_URL, approx_mb=2211.0)  # 552,814,086 fp32 parameters
REGISTRY: dict[str, ModelEntry] = {}


def register(entry: ModelEntry) -> ModelEntry:
    """Add (or replace) a registry entry; returns it."""
    REGISTRY[entry.name] = entry
    return entry


_BUNDLED_LICENSE = "CC BY-NC 4.0 (weights; reasons in detector/weights/card.json)"
_BUNDLED_EPS_UNET = "UNet2DModel distilled by train/ from the diffusion UNet's ε at t=0, 1.30 M parameters, 64 px"
_BUNDLED_DIRE_UNET = "UNet2DModel trained by train/, 3.71 M parameters, 64 px"
register(ModelEntry(ModelConfig(
    "bundled", "DistilDIRE — bundled (1 UNet call per tile)",
    "DistilDIRE student on [image, ε], ε from a small UNet distilled from a small diffusion UNet (which keeps the "
    "DIRE map), all trained here by train/ on public generators' images and photos", _BUNDLED_LICENSE, "image+eps", 64,
    TilingConfig(64, 16, "mean_logit"), calibration=None, policy=None, eps_network=_BUNDLED_EPS_UNET,
    dire_network=_BUNDLED_DIRE_UNET), bundled_variant="distildire"))
register(ModelEntry(ModelConfig(
    "bundled-fast", "Image-only fast tier — bundled (0 UNet calls)",
    "A classifier on the image tiles alone, distilled from the bundled DistilDIRE student", _BUNDLED_LICENSE,
    "image", 64, TilingConfig(64, 16, "mean_logit"), calibration=None, policy=None), bundled_variant="image-only"))


def _official(name: str, label: str, filename: str, trained_on: str) -> ModelEntry:
    """An official DistilDIRE checkpoint (hub) with the OpenAI ADM it reads ε from: the authors' protocol
    (256-px resize + centre crop, no calibration, threshold 0.5)."""
    return ModelEntry(ModelConfig(
        name, f"DistilDIRE official — {label} (CC BY-NC)",
        f"DistilDIRE trained on DiffusionForensics {trained_on}; ResNet-50 student, official checkpoint",
        _OFFICIAL_LICENSE, "image+eps", 256, policy=VerdictPolicy(OFFICIAL_THRESHOLD),
        eps_network="OpenAI ADM 256×256 unconditional, 552.8 M parameters"),
        files=(RemoteFile(filename, "student", repo=OFFICIAL_REPO, revision=OFFICIAL_REVISION, approx_mb=283.0), _ADM))


register(_official("distildire-imagenet", "ImageNet/ADM", "imagenet-distil-dire-11e.pth", "ImageNet (ADM fakes)"))
register(_official("distildire-celebahq", "CelebA-HQ", "celebahq-distil-dire-34e.pth", "CelebA-HQ (SD-v2 fakes)"))

OFFICIAL = [name for name, entry in REGISTRY.items() if entry.files]
BUNDLED = {name: entry.bundled_variant for name, entry in REGISTRY.items() if entry.bundled_variant}


def available_names() -> list[str]:
    """Every registry name (metadata only: no I/O)."""
    return list(REGISTRY)


def describe(name: str) -> ModelEntry:
    """A registry entry's metadata (no I/O)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsNotFoundError(f"unknown model {name!r}: use one of {', '.join(REGISTRY)}") from None


def read_card(folder: Path) -> dict:
    """A weights folder's ``card.json`` (the error says what a weights folder is)."""
    card_path = Path(folder) / "card.json"
    if not card_path.is_file():
        raise WeightsNotFoundError(f"{folder} has no card.json; expected a weights folder like detector/weights/")
    card = json.loads(card_path.read_text())
    if not card.get("variants"):
        raise WeightsNotFoundError(f"{card_path} lists no model variants")
    return card


def _folder_variant(card: dict, variant: str | None, where: Path) -> str:
    variants = card["variants"]
    variant = variant or card.get("default_variant") or next(iter(variants))
    if variant not in variants:
        raise WeightsNotFoundError(f"{where / 'card.json'} has no variant {variant!r} (has: {', '.join(variants)})")
    return variant


def _spec_from_folder(folder: Path, variant: str | None, name: str) -> WeightsSpec:
    card = read_card(folder)
    variant = _folder_variant(card, variant, folder)
    entry = card["variants"][variant]
    student = folder / entry["student"]
    unet = folder / entry["unet"] if entry.get("unet") else None
    dire_unet = folder / entry["dire_unet"] if entry.get("dire_unet") else None
    for path in filter(None, (student, unet, dire_unet)):
        if not path.exists():
            raise WeightsNotFoundError(f"{path} is listed in {folder / 'card.json'} but missing")
    config = ModelConfig.from_card(card, variant, name)
    if name in REGISTRY:  # a bundled model: the registry names and describes it, the card sets its numbers
        config = replace(config, label=REGISTRY[name].label, description=REGISTRY[name].config.description)
    if unet is not None:
        config = replace(config, schedule=read_schedule(unet) or config.schedule)
    return WeightsSpec(config, student, unet, card, variant, dire_unet)


def read_schedule(unet: Path) -> Schedule | None:
    """The training schedule a diffusers UNet folder declares (``scheduler_config.json``), or None."""
    path = Path(unet) / "scheduler_config.json"
    return Schedule.from_scheduler_config(json.loads(path.read_text())) if path.is_file() else None


def cache_dir() -> Path:
    """Where downloaded checkpoints live, and where hand-placed ones are looked for ($DISTILDIRE_CACHE)."""
    return Path(os.environ.get("DISTILDIRE_CACHE", Path.home() / ".cache" / "distildire"))


def _local_file(remote: RemoteFile) -> Path | None:
    """The file if it is on this machine: $DISTILDIRE_CACHE first, then the Hugging Face cache."""
    local = cache_dir() / remote.filename
    if local.is_file():
        return local
    if remote.repo:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(remote.repo, remote.filename, revision=remote.revision)
        if isinstance(cached, str):
            return Path(cached)
    return None


def is_local(name: str) -> bool:
    """Whether every file of a registry model is on this machine (file checks only, no network)."""
    entry = describe(name)
    if entry.bundled_variant is not None:
        return (BUNDLED_DIR / "card.json").is_file()
    return all(_local_file(f) for f in entry.files)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(remote: RemoteFile, folder: Path) -> Path:
    """The default transport: huggingface_hub for hub files (its cache, its progress bar), a streamed
    HTTPS download with a progress bar for URLs (into ``folder``, via a ``.part`` file)."""
    if _offline():
        raise ConnectionError("HF_HUB_OFFLINE is set")
    if remote.repo:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(remote.repo, remote.filename, revision=remote.revision))
    import urllib.request

    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    target, part = folder / remote.filename, folder / f"{remote.filename}.part"
    with urllib.request.urlopen(remote.url, timeout=60) as response, open(part, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=remote.filename) as bar:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
                bar.update(len(chunk))
    part.replace(target)
    return target


Transport = Callable[[RemoteFile, Path], Path]


def download(name: str, transport: Transport | None = None) -> dict[str, Path]:
    """Fetch a registry model's files that are not yet local (``transport(remote, cache_dir)`` → path;
    default: huggingface_hub / HTTPS with progress bars), check SHA-256 where known, and return
    {role: path}. Offline or on failure: ``WeightsNotFoundError`` naming the files and where to put them."""
    entry = describe(name)
    if not entry.files:
        if entry.bundled_variant and not (BUNDLED_DIR / "card.json").is_file():
            resolve_weights(name)  # raises the explanatory error
        return {}
    paths = {}
    for remote in entry.files:
        path = _local_file(remote)
        if path is None:
            try:
                path = Path((transport or _fetch)(remote, cache_dir()))
            except Exception as exc:
                raise WeightsNotFoundError(_offline_message(entry, exc)) from None
            if remote.sha256 and _sha256(path) != remote.sha256:
                path.unlink(missing_ok=True)
                raise WeightsNotFoundError(f"{remote.filename}: SHA-256 mismatch (expected {remote.sha256}); "
                                           f"the download was removed, try again")
        paths[remote.role] = path
    return paths


def _offline_message(entry: ModelEntry, exc: Exception) -> str:
    missing = [f for f in entry.files if _local_file(f) is None]
    lines = "; ".join(f"{f.filename} (~{f.approx_mb:.0f} MB) from {f.origin}" for f in missing)
    student = next((f.filename for f in entry.files if f.role == "student"), "STUDENT.pth")
    return (
        f"could not obtain {entry.name}'s files ({type(exc).__name__}: {exc}). Missing: {lines}. On a machine with "
        f"internet access run `python -m detector download {entry.name}`, or fetch those files by hand, and put them "
        f"in {cache_dir()} (or $DISTILDIRE_CACHE); or pass local paths: "
        f"Detector.from_files(student='{student}', unet='{ADM_FILENAME}') / "
        f"python -m detector scan --student FILE --unet FILE"
    )


def choose_auto(cuda: bool | None = None, allow_cpu: bool | None = None, fetch: bool = False,
                transport: Transport | None = None) -> tuple[str, str]:
    """The model ``auto`` stands for, and why: the official ImageNet DistilDIRE where its files are
    present (or, with ``fetch``, can be downloaded) and a GPU is present or the operator opted in on CPU
    ($DISTILDIRE_OFFICIAL_ON_CPU=1); otherwise ``bundled``."""
    official = "distildire-imagenet"
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if allow_cpu is None:
        allow_cpu = os.environ.get("DISTILDIRE_OFFICIAL_ON_CPU") == "1"
    if not (cuda or allow_cpu):
        return "bundled", ("no GPU on this server: the official model's ADM-256 UNet takes ~11 s per image on 2 CPU "
                           "cores (set DISTILDIRE_OFFICIAL_ON_CPU=1 to use it anyway)")
    where = "a GPU is present" if cuda else "the operator opted in on CPU"
    if is_local(official):
        return official, f"its files are on this machine and {where}"
    if not fetch:
        return "bundled", (f"{where}, but the official files are not on this machine "
                           f"(python -m detector download {official})")
    try:
        download(official, transport)
    except WeightsNotFoundError as exc:
        return "bundled", f"{where}, but the official files could not be fetched: {str(exc).split('. Missing')[0]}"
    return official, f"its files were downloaded and {where}"


def resolve_weights(name_or_dir: str | os.PathLike = "bundled", variant: str | None = None) -> WeightsSpec:
    """A registry name (fetching its files when missing and online), ``auto``, or a weights folder
    (``variant``: one of its card's variants, default the card's ``default_variant``) → a ``WeightsSpec``
    whose files exist locally."""
    key = str(name_or_dir)
    if key in BUNDLED:
        if not (BUNDLED_DIR / "card.json").is_file():
            raise WeightsNotFoundError(
                "the bundled weights are not in this checkout yet (detector/weights/card.json is missing). "
                "They are produced by the training recipe in train/ (see README); meanwhile pass your own "
                "files with Detector.from_files(student=..., unet=...) or a weights folder."
            )
        return _spec_from_folder(BUNDLED_DIR, BUNDLED[key], key)
    if key == AUTO:
        return resolve_weights(choose_auto()[0])
    if key in OFFICIAL:
        files = download(key)
        return WeightsSpec(REGISTRY[key].config, files["student"], files["unet"])
    path = Path(key).expanduser()
    if path.is_dir():
        return _spec_from_folder(path, variant, f"{path.name}:{variant}" if variant else path.name)
    raise WeightsNotFoundError(f"unknown weights {key!r}: use one of {', '.join(available_names())} or a weights folder")


def model_config(name_or_dir: str | os.PathLike = "bundled", variant: str | None = None) -> ModelConfig:
    """A model's full ``ModelConfig`` without loading its weights: the registry's for the official presets
    (no I/O, no download), the card's for the bundled models and weights folders (reads ``card.json``)."""
    key = str(name_or_dir)
    if key == AUTO:
        key = choose_auto()[0]
    if key in OFFICIAL:
        return REGISTRY[key].config
    return resolve_weights(key, variant).config


def save_weights(
    folder: str | os.PathLike,
    students: dict[str, tuple[object, str]],
    unet: object | None = None,
    card: dict | None = None,
    schedule: object | None = None,
    eps_unet: object | None = None,
) -> Path:
    """Write a weights folder that ``resolve_weights`` reads: ``{variant}.safetensors`` per student
    (``students = {variant: (model, inputs)}``, inputs as in ``INPUT_KINDS``), ``unet/`` (diffusers,
    safetensors, with ``scheduler_config.json``) and ``card.json`` (``card`` plus the variant table;
    ``card["variants"][name]`` may carry that variant's threshold, calibration and preprocessing).
    ``eps_unet``: a distilled ε network, written to ``eps-unet/``: the students read ε from it, and ``unet``
    (the diffusion model) then serves the DIRE map only."""
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
        if needs_unet and eps_unet is not None:
            variants[variant].update(unet="eps-unet", dire_unet="unet")
    for network, subfolder in ((unet, "unet"), (eps_unet, "eps-unet")):
        if network is not None:
            network.save_pretrained(folder / subfolder, safe_serialization=True)
            sched = schedule or Schedule()
            (folder / subfolder / "scheduler_config.json").write_text(json.dumps(sched.to_scheduler_config(), indent=2))
    card = dict(card or {})
    given = card.get("variants", {})  # per-variant settings (threshold, calibration, …) kept beside the files
    card["variants"] = {**given, **{name: {**given.get(name, {}), **files} for name, files in variants.items()}}
    if unet is not None:
        card.setdefault("image_size", int(unet.config.sample_size))
    card.setdefault("default_variant", next(iter(variants)))
    (folder / "card.json").write_text(json.dumps(card, indent=2))
    return folder


resolve = resolve_weights
