"""``Detector``: images in, one ``DetectionResult`` per image out, the DistilDIRE way.

DistilDIRE: ε = the UNet's noise at t = 0 (one call), student(cat[x, ε]) → p(fake).
On request the teacher's evidence as well: DDIM inversion + reconstruction (2 × steps calls) and
DIRE = |x − reconstruction|. An image-only student needs no UNet (0 calls).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DModel
from PIL import Image

from .ddim import DDIM, Schedule, dire_to_uint8
from .models.adm import ADMConfig
from .models.checkpoint import read_checkpoint
from .models.student import DistilDIREStudent, build_student_from_state_dict
from .models.unet import load_unet
from .preprocess import PREPROCESSING_VERSION, DetectorInputError, ImageInput, load_image, to_model_tensor
from .registry import WeightsSpec, resolve_weights
from .tiling import TileGrid, TilingConfig, aggregate, image_to_tiles
from .verdict import DEFAULT_UNSURE_MARGIN, VerdictPolicy

#: Longest side of ``DetectionResult.preview`` (the whole image, for heat maps).
PREVIEW_SIZE = 512

_PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class DetectionResult:
    """The verdict and evidence for one input. ``error`` is set (and the rest empty) for a bad input."""

    source: str
    p_fake: float | None = None
    label: str | None = None  # "fake" | "real": the side of the threshold
    verdict: str | None = None  # the label, "unsure" near the threshold, or "error" (``VerdictPolicy``)
    logit: float | None = None
    error: str | None = None
    image: np.ndarray | None = None  # H×W×3 uint8: the crop the model saw
    eps: np.ndarray | None = None  # H×W×3 float32: ε at t = 0
    reconstruction: np.ndarray | None = None  # H×W×3 uint8 (with_dire)
    dire: np.ndarray | None = None  # H×W×3 uint8, ⌊127.5·|x − x_rec|⌋ (with_dire)
    unet_calls: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    # tiled models only: where the model looked and what each tile scored
    grid: TileGrid | None = None  # tile boxes in original-image pixels (after enlarging a tiny image)
    tile_p_fake: np.ndarray | None = None  # rows×cols calibrated p(fake) per tile
    tile_index: int | None = None  # the tile shown in ``image``/``eps``: the highest-scoring one
    preview: np.ndarray | None = None  # the whole image, longest side ≤ PREVIEW_SIZE, uint8
    low_confidence: bool = False
    warning: str | None = None  # why the score deserves less trust (e.g. the image is smaller than a tile)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        """Scores, timings and errors (no pixel arrays): JSON-ready."""
        return {
            "source": self.source,
            "p_fake": self.p_fake,
            "label": self.label,
            "verdict": self.verdict,
            "logit": self.logit,
            "error": self.error,
            "unet_calls": self.unet_calls,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
            "low_confidence": self.low_confidence,
            "warning": self.warning,
            "tiles": None if self.grid is None else {
                "rows": self.grid.rows, "cols": self.grid.cols, "size": self.grid.tile,
                "boxes": [list(b) for b in self.grid.boxes],
                "p_fake": np.round(self.tile_p_fake, 5).tolist(), "shown": self.tile_index},
        }


def _to_uint8_image(batch: torch.Tensor) -> np.ndarray:
    """B×3×H×W in [−1, 1] → B×H×W×3 uint8."""
    return ((batch.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _preview(image: Image.Image, size: int = PREVIEW_SIZE) -> np.ndarray:
    """The whole image, longest side at most ``size`` (for drawing the tile heat map on)."""
    scale = min(1.0, size / max(image.size))
    target = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return np.asarray(image.resize(target, Image.BILINEAR, reducing_gap=3.0).convert("RGB"))  # no full-size copy


def _file_digest(paths: Iterable[Path | None]) -> str:
    digest = hashlib.sha256()
    for path in filter(None, paths):
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            digest.update(f.name.encode())
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def _to_inputs(image: Image.Image, image_size: int, tiling: TilingConfig | None) -> tuple[torch.Tensor, TileGrid | None]:
    if tiling is not None:
        return image_to_tiles(image, tiling.tile, tiling.max_tiles)
    return to_model_tensor(image, image_size)[None], None


def prepare_input(item: ImageInput, index: int, image_size: int, tiling: TilingConfig | None,
                  max_file_bytes: int | None = None) -> tuple[DetectionResult, torch.Tensor | None]:
    """Decode one input and cut it into model inputs: N×3×s×s in [−1, 1] (N tiles, or one resized and
    centre-cropped input). A bad input gets a result with ``error`` set and no tensor; never raises."""
    start = time.perf_counter()
    name = str(item) if isinstance(item, (str, Path)) else f"input #{index}"
    try:
        loaded = load_image(item, max_bytes=max_file_bytes)
        tensor, grid = _to_inputs(loaded.image, image_size, tiling)
    except DetectorInputError as exc:
        return DetectionResult(source=name, error=str(exc), verdict="error"), None
    except Exception as exc:  # never let one odd file take the batch down
        return DetectionResult(source=name, error=f"could not be processed ({type(exc).__name__}: {exc})",
                               verdict="error"), None
    result = DetectionResult(source=name, grid=grid, timings_ms={"decode": (time.perf_counter() - start) * 1e3})
    if grid is not None:
        result.preview = _preview(loaded.image)
    width, height = loaded.image.size
    if (grid is not None and grid.enlarged) or (grid is None and min(width, height) * 4 < image_size):
        result.low_confidence = True
        result.warning = (
            f"the image is only {width}×{height} px, far below the model's {image_size}-px input: it was "
            f"enlarged to be scored, so the score is unreliable (reported as unsure)")
    return result, tensor


class EpsExtractor:
    """DistilDIRE's feature: ε at t = 0 from a diffusion UNet (one call, float32). ``Detector`` and the
    training caches both compute ε through this, so cached and served ε are the same numbers."""

    def __init__(self, unet: UNet2DModel, schedule: Schedule | None = None, ddim_steps: int = 20,
                 device: str | torch.device | None = None, max_batch: int | None = None, precision: str = "fp32"):
        if precision not in ("fp32", "bf16"):
            raise ValueError("the UNet runs in fp32 (default) or under bf16 autocast ('bf16')")
        self.precision = precision
        self.device = torch.device(device or "cpu")
        # on CPU, UNet calls of ~16 tiles run fastest (cache-sized); larger batches are split
        self.max_batch = max_batch or (16 if self.device.type == "cpu" else 256)
        if unet.dtype != torch.float32:
            unet = unet.to(torch.float32)
        # channels_last: the same fp32 arithmetic, ~1.6× faster for the small UNet on CPU
        self.unet = unet.to(self.device, memory_format=torch.channels_last).eval()
        self.ddim = DDIM(schedule or Schedule(), ddim_steps)

    def eps_fn(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The UNet's ε prediction (first 3 output channels; learned-variance channels dropped), float32."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.unet(x.contiguous(memory_format=torch.channels_last), t).sample[:, :3]
        return out.float().contiguous()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """ε at t = 0 for a batch in [−1, 1] (one UNet call per image, in chunks of ``max_batch``)."""
        x = x.to(self.device)
        return torch.cat([self.ddim.eps_at_start(self.eps_fn, part) for part in x.split(self.max_batch)])


def load_student(path: str | Path) -> DistilDIREStudent:
    """A classifier checkpoint (safetensors, or the official ``.pth`` layout) → model, arch read from keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"student weights not found: {path}")
    return build_student_from_state_dict(read_checkpoint(path))


class Detector:
    """DistilDIRE inference: ``detect(inputs, with_dire=False)`` → ``list[DetectionResult]``.

    Two preprocessing modes, declared by the model card:

    * ``resize-center-crop`` (the official checkpoints): shorter side resized to ``image_size``,
      centre crop, one forward per image;
    * ``tiles`` (the bundled model): a deterministic grid of native-resolution tiles
      (``TilingConfig``), one forward per tile, tile logits aggregated by the card's rule.

    ``calibration`` (temperature ``T``, bias ``b``) maps the raw logit z to p = σ(z / T + b).
    Runs under ``torch.inference_mode`` in batches. The UNet runs in float32 by default (as the reference:
    ε at t = 0 amplifies rounding by 100×); ``unet_precision="bf16"`` runs it under bf16 autocast (measured on a
    2-core CPU without AMX: slower for both the ADM-256 and the bundled UNet, 1.7 % and 9 % ε error:
    bench/RESULTS.md; for hardware where bf16 pays). On CUDA the student may use bf16/fp16 and channels_last.
    """

    def __init__(
        self,
        student: DistilDIREStudent,
        unet: UNet2DModel | None = None,
        *,
        schedule: Schedule | None = None,
        image_size: int | None = None,
        tiling: TilingConfig | None = None,
        calibration: dict | None = None,
        threshold: float = 0.5,
        unsure_margin: float = DEFAULT_UNSURE_MARGIN,
        unsure_above: float | None = None,
        ddim_steps: int = 20,
        device: str | torch.device | None = None,
        precision: str = "fp32",
        unet_precision: str = "fp32",
        channels_last: bool = False,
        batch_size: int = 8,
        name: str = "custom",
        card: dict | None = None,
        weights_digest: str | None = None,
    ):
        in_channels = student.arch.in_channels
        if in_channels == 6 and unet is None:
            raise ValueError("a 6-channel DistilDIRE student needs a diffusion UNet for ε")
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {list(_PRECISIONS)}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type != "cuda" and precision != "fp32":
            raise ValueError("bf16/fp16 are offered on CUDA only; the CPU path runs in fp32 for determinism")
        if self.device.type == "cuda":  # exact fp32 convolutions and matmuls for the UNet
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.student_dtype = _PRECISIONS[precision]
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.student = student.to(self.device, self.student_dtype, memory_format=self.memory_format).eval()
        self.schedule = schedule or Schedule()
        self.ddim = DDIM(self.schedule, ddim_steps)
        self.extractor = (EpsExtractor(unet, self.schedule, ddim_steps, self.device, precision=unet_precision)
                          if unet is not None else None)
        self.unet = self.extractor.unet if unet is not None else None
        self.tiling = tiling
        if tiling is not None:
            image_size = tiling.tile
        if image_size is None:
            if unet is None:
                raise ValueError("image_size is required for an image-only student")
            image_size = int(unet.config.sample_size)
        self.image_size = int(image_size)
        calibration = calibration or {}
        self.temperature = float(calibration.get("temperature", 1.0))
        self.bias = float(calibration.get("bias", 0.0))
        if self.temperature <= 0:
            raise ValueError("calibration temperature must be positive")
        self.policy = VerdictPolicy(float(threshold), unsure_margin, unsure_above)
        self.batch_size = batch_size
        self.name = name
        self.card = card or {}
        self._weights_digest = weights_digest
        self._weight_files: list[Path | None] = []
        self.uses_eps = in_channels == 6
        self._seconds_per_unet_call: float | None = None

    # ----------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, name_or_dir: str = "bundled", variant: str | None = None, **kwargs) -> Detector:
        """Registry name (``bundled``, ``bundled-fast``, ``distildire-imagenet``, ``distildire-celebahq``)
        or a weights folder with a ``card.json`` (``variant`` picks one of its models)."""
        return cls.from_spec(resolve_weights(name_or_dir, variant), **kwargs)

    @classmethod
    def from_spec(cls, spec: WeightsSpec, **kwargs) -> Detector:
        kwargs.setdefault("threshold", spec.threshold)
        if spec.unsure_margin is not None:
            kwargs.setdefault("unsure_margin", float(spec.unsure_margin))
        if spec.unsure_above is not None:
            kwargs.setdefault("unsure_above", float(spec.unsure_above))
        preprocessing = spec.preprocessing or {}
        if preprocessing.get("mode") == "tiles":
            kwargs.setdefault("tiling", TilingConfig.from_card(preprocessing))
        elif preprocessing.get("mode") not in (None, "resize-center-crop"):
            raise ValueError(f"{spec.name}: unknown preprocessing mode {preprocessing.get('mode')!r}")
        if spec.image_size:
            kwargs.setdefault("image_size", spec.image_size)
        kwargs.setdefault("calibration", spec.calibration)
        kwargs.setdefault("name", spec.name)
        kwargs.setdefault("card", spec.card)
        return cls.from_files(student=spec.student, unet=spec.unet, **kwargs)

    @classmethod
    def from_files(
        cls, student: str | Path, unet: str | Path | None = None, adm_config: ADMConfig | None = None, **kwargs
    ) -> Detector:
        """``student``: safetensors or official ``.pth`` (depth and input channels read from its keys).
        ``unet``: a diffusers UNet2DModel folder or a guided-diffusion ``.pt`` (converted on load;
        ``adm_config`` for non-default ADM structures)."""
        student_model = load_student(student)
        unet_model = load_unet(unet, adm_config) if unet is not None else None
        if unet is not None and "schedule" not in kwargs:
            config_path = Path(unet) / "scheduler_config.json"
            if config_path.is_file():
                kwargs["schedule"] = Schedule.from_scheduler_config(json.loads(config_path.read_text()))
        detector = cls(student_model, unet_model, **kwargs)
        detector._weight_files = [Path(student), Path(unet) if unet else None]
        return detector

    # ----------------------------------------------------------------------------------- compute
    def eps_fn(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The UNet's ε prediction (first 3 output channels; learned-variance channels dropped)."""
        return self.extractor.eps_fn(x, t)

    def eps(self, x: torch.Tensor) -> torch.Tensor:
        """DistilDIRE's ε at t = 0 for a batch in [−1, 1] (one UNet call)."""
        return self.extractor(x)

    def raw_logits(self, x: torch.Tensor, eps: torch.Tensor | None) -> torch.Tensor:
        """The student's uncalibrated logit per input (B,)."""
        inputs = torch.cat([x, eps], dim=1) if eps is not None else x
        inputs = inputs.to(self.device, self.student_dtype).contiguous(memory_format=self.memory_format)
        return self.student(inputs)["logit"].float().squeeze(1)

    def calibrate(self, logits: torch.Tensor | np.ndarray | float) -> torch.Tensor:
        """Raw logit(s) → calibrated logit(s): z / T + b."""
        return torch.as_tensor(logits, dtype=torch.float32) / self.temperature + self.bias

    def preprocess(self, image: Image.Image) -> tuple[torch.Tensor, TileGrid | None]:
        """A decoded RGB image → the model inputs (N×3×s×s in [−1, 1]) and, when tiled, their grid."""
        return _to_inputs(image, self.image_size, self.tiling)

    @property
    def unet_calls_per_image(self) -> int:
        """UNet calls for one image: one per tile (at most ``max_tiles``) for a tiled DistilDIRE model."""
        if not self.uses_eps:
            return 0
        return self.tiling.max_tiles if self.tiling is not None else 1

    def seconds_per_unet_call(self) -> float:
        """Wall time of one UNet call on one input at ``image_size`` on this device, measured once (one
        untimed warm-up on small models; a single timed call where one call takes over a second)."""
        if self._seconds_per_unet_call is None:
            if self.unet is None:
                return 0.0
            x = torch.zeros(1, 3, self.image_size, self.image_size, device=self.device)
            t = torch.zeros(1, dtype=torch.long, device=self.device)
            with torch.inference_mode():
                for _ in range(2):
                    start = time.perf_counter()
                    self.eps_fn(x, t)
                    self._sync()
                    elapsed = time.perf_counter() - start
                    if elapsed > 1.0:
                        break
            self._seconds_per_unet_call = elapsed
        return self._seconds_per_unet_call

    def estimate_seconds(self, n_images: int, with_dire: bool = False) -> float:
        """Expected compute time for ``n_images`` (UNet calls × the measured cost per call; the student
        and decoding are left out: small beside the UNet). An upper bound for tiled models (≤ max_tiles)."""
        calls = self.unet_calls_per_image + (2 * self.ddim.steps if with_dire else 0)
        return n_images * calls * self.seconds_per_unet_call()

    @property
    def threshold(self) -> float:
        """The threshold of the default verdict policy (the model card's unless given)."""
        return self.policy.threshold

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def detect(
        self, inputs: ImageInput | Sequence[ImageInput], with_dire: bool = False, batch_size: int | None = None,
        policy: VerdictPolicy | None = None, max_file_bytes: int | None = None,
        on_unet_calls: Callable[[int], None] | None = None,
    ) -> list[DetectionResult]:
        """One result per input, in order. Bad inputs get ``error`` set; the others are unaffected.
        ``policy`` (default: this detector's, from the model card) sets each result's label and verdict;
        a file over ``max_file_bytes`` is refused unread (an error for it alone). ``on_unet_calls(n)`` hears
        of every UNet call as it completes (n = inputs in that call), for progress bars.
        Per-stage timings of a batch are shared among its images in proportion to their inputs."""
        policy = policy or self.policy
        if isinstance(inputs, (str, bytes, bytearray, Path, Image.Image)) or not isinstance(inputs, Sequence):
            inputs = [inputs]
        if with_dire and self.unet is None:
            raise ValueError("DIRE needs a diffusion UNet; this detector is image-only")
        prepared = [self.prepare(item, index, max_file_bytes) for index, item in enumerate(inputs)]
        return self.score(prepared, with_dire, batch_size, policy, on_unet_calls)

    def prepare(self, item: ImageInput, index: int = 0, max_file_bytes: int | None = None
                ) -> tuple[DetectionResult, torch.Tensor | None]:
        """Decode and preprocess one input (no model call): its result so far, and the model inputs
        (None for a bad input, whose result then carries the error). Safe in DataLoader workers."""
        return prepare_input(item, index, self.image_size, self.tiling, max_file_bytes)

    @torch.inference_mode()
    def score(self, prepared: Sequence[tuple[DetectionResult, torch.Tensor | None]], with_dire: bool = False,
              batch_size: int | None = None, policy: VerdictPolicy | None = None,
              on_unet_calls: Callable[[int], None] | None = None) -> list[DetectionResult]:
        """Run the model on prepared inputs (``prepare``) in batches; fills and returns their results."""
        policy = policy or self.policy
        results = [result for result, _ in prepared]
        ready = [(result, tensor) for result, tensor in prepared if tensor is not None]
        step = batch_size or self.batch_size
        for offset in range(0, len(ready), step):
            chunk = ready[offset : offset + step]
            self._run_batch([r for r, _ in chunk], [t for _, t in chunk], with_dire, policy, on_unet_calls)
        return results

    def detect_one(self, item: ImageInput, with_dire: bool = False, policy: VerdictPolicy | None = None) -> DetectionResult:
        return self.detect([item], with_dire=with_dire, policy=policy)[0]

    def _run_batch(self, results: list[DetectionResult], tensors: list[torch.Tensor], with_dire: bool,
                   policy: VerdictPolicy, on_unet_calls: Callable[[int], None] | None = None) -> None:
        counts = [len(t) for t in tensors]
        x = torch.cat(tensors).to(self.device)
        stages: dict[str, float] = {}
        eps = None
        if self.uses_eps:
            start = time.perf_counter()
            eps = self.eps(x)
            self._sync()
            stages["unet_eps"] = time.perf_counter() - start
            if on_unet_calls:
                on_unet_calls(len(x))
        start = time.perf_counter()
        tile_logits = self.calibrate(self.raw_logits(x, eps).cpu())
        self._sync()
        stages["student"] = time.perf_counter() - start

        # one logit per image: its only input, or its tiles aggregated by the card's rule
        per_image = list(torch.split(tile_logits, counts))
        rule = self.tiling.aggregate if self.tiling is not None else None
        image_logits = torch.tensor([float(z[0]) if rule is None else aggregate(z, rule) for z in per_image])
        shown = [int(z.argmax()) for z in per_image]  # the tile displayed as evidence
        offsets = np.cumsum([0, *counts[:-1]])
        picked = torch.tensor([int(o) + s for o, s in zip(offsets, shown)], dtype=torch.long)

        recon = dire = None
        if with_dire:  # the teacher's evidence, for the displayed input of each image
            start = time.perf_counter()
            x_shown = x[picked.to(self.device)]

            def eps_fn(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                out = self.eps_fn(xt, t)
                if on_unet_calls:
                    on_unet_calls(len(xt))
                return out

            recon = self.ddim.reconstruct(eps_fn, self.ddim.invert(eps_fn, x_shown))
            dire = dire_to_uint8(x_shown, recon).permute(0, 2, 3, 1).cpu().numpy()
            recon = _to_uint8_image(recon)
            self._sync()
            stages["dire"] = time.perf_counter() - start

        probs = torch.sigmoid(image_logits).numpy()
        images = _to_uint8_image(x[picked.to(self.device)])
        eps_maps = eps[picked.to(self.device)].permute(0, 2, 3, 1).cpu().numpy() if eps is not None else None
        total = sum(counts)
        for i, result in enumerate(results):
            result.p_fake = float(probs[i])
            result.logit = float(image_logits[i])
            policy.apply(result)
            result.image = images[i]
            result.eps = eps_maps[i] if eps_maps is not None else None
            if result.grid is not None:
                result.tile_index = shown[i]
                grid = result.grid
                result.tile_p_fake = torch.sigmoid(per_image[i]).numpy().reshape(grid.rows, grid.cols)
            if with_dire:
                result.reconstruction, result.dire = recon[i], dire[i]
            result.unet_calls = (counts[i] if eps is not None else 0) + (2 * self.ddim.steps if with_dire else 0)
            share = counts[i] / total
            result.timings_ms.update({k: v * 1e3 * (share if k != "dire" else 1 / len(results)) for k, v in stages.items()})
            result.timings_ms["total"] = sum(v for k, v in result.timings_ms.items() if k != "total")

    # ----------------------------------------------------------------------------------- report
    @property
    def weights_digest(self) -> str | None:
        """SHA-256 (first 16 hex digits) of the weight files, computed on first use."""
        if self._weights_digest is None and self._weight_files:
            self._weights_digest = _file_digest(self._weight_files)
        return self._weights_digest

    def describe(self) -> dict:
        """Model name, weights hash and preprocessing, for reports."""
        return {
            "model": self.name,
            "weights_sha256_16": self.weights_digest,
            "inputs": "image+eps" if self.uses_eps else "image",
            "student_depth": self.student.arch.depth,
            "image_size": self.image_size,
            "threshold": self.threshold,
            "unsure_margin": self.policy.unsure_margin,
            "unsure_band": list(self.policy.band),
            "ddim_steps": self.ddim.steps,
            "unet_precision": self.extractor.precision if self.extractor else None,
            "unet_calls_per_image": self.unet_calls_per_image,
            "device": str(self.device),
            "preprocessing": self.preprocessing_description,
            "calibration": {"temperature": self.temperature, "bias": self.bias},
        }

    @property
    def preprocessing_description(self) -> str:
        if self.tiling is None:
            return PREPROCESSING_VERSION
        t = self.tiling
        return (f"tiles-v1: exif-transpose, first frame, RGB (alpha over white), native resolution (never resized; "
                f"images under {t.tile} px enlarged and flagged), grid of up to {t.max_tiles} tiles of {t.tile}x{t.tile}, "
                f"[-1,1], tile logits aggregated by {t.aggregate}")
