"""``Detector``: images in, one ``DetectionResult`` per image out, the DistilDIRE way.

DistilDIRE: ε = the UNet's noise at t = 0 (one call), student(cat[x, ε]) → p(fake).
On request the teacher's evidence as well: DDIM inversion + reconstruction (2 × steps calls) and
DIRE = |x − reconstruction|. An image-only student needs no UNet (0 calls).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DModel

from .ddim import DDIM, Schedule, dire_to_uint8
from .models.adm import ADMConfig
from .models.checkpoint import read_checkpoint
from .models.student import DistilDIREStudent, build_student_from_state_dict
from .models.unet import load_unet
from .preprocess import PREPROCESSING_VERSION, DetectorInputError, ImageInput, load_image, to_model_tensor
from .registry import WeightsSpec, resolve_weights

_PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class DetectionResult:
    """The verdict and evidence for one input. ``error`` is set (and the rest empty) for a bad input."""

    source: str
    p_fake: float | None = None
    label: str | None = None  # "fake" | "real"
    logit: float | None = None
    error: str | None = None
    image: np.ndarray | None = None  # H×W×3 uint8: the crop the model saw
    eps: np.ndarray | None = None  # H×W×3 float32: ε at t = 0
    reconstruction: np.ndarray | None = None  # H×W×3 uint8 (with_dire)
    dire: np.ndarray | None = None  # H×W×3 uint8, ⌊127.5·|x − x_rec|⌋ (with_dire)
    unet_calls: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        """Scores, timings and errors (no pixel arrays): JSON-ready."""
        return {
            "source": self.source,
            "p_fake": self.p_fake,
            "label": self.label,
            "logit": self.logit,
            "error": self.error,
            "unet_calls": self.unet_calls,
            "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()},
        }


def _to_uint8_image(batch: torch.Tensor) -> np.ndarray:
    """B×3×H×W in [−1, 1] → B×H×W×3 uint8."""
    return ((batch.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


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


def load_student(path: str | Path) -> DistilDIREStudent:
    """A classifier checkpoint (safetensors, or the official ``.pth`` layout) → model, arch read from keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"student weights not found: {path}")
    return build_student_from_state_dict(read_checkpoint(path))


class Detector:
    """DistilDIRE inference: ``detect(inputs, with_dire=False)`` → ``list[DetectionResult]``.

    Runs under ``torch.inference_mode`` in batches. The UNet always runs in float32 (as the reference:
    ε at t = 0 amplifies rounding by 100×); on CUDA the student may use bf16/fp16 and channels_last.
    """

    def __init__(
        self,
        student: DistilDIREStudent,
        unet: UNet2DModel | None = None,
        *,
        schedule: Schedule | None = None,
        image_size: int | None = None,
        threshold: float = 0.5,
        ddim_steps: int = 20,
        device: str | torch.device | None = None,
        precision: str = "fp32",
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
        if unet is not None and unet.dtype != torch.float32:
            unet = unet.to(torch.float32)
        self.unet = unet.to(self.device).eval() if unet is not None else None
        if image_size is None:
            if unet is None:
                raise ValueError("image_size is required for an image-only student")
            image_size = int(unet.config.sample_size)
        self.image_size = int(image_size)
        self.threshold = float(threshold)
        self.schedule = schedule or Schedule()
        self.ddim = DDIM(self.schedule, ddim_steps)
        self.batch_size = batch_size
        self.name = name
        self.card = card or {}
        self._weights_digest = weights_digest
        self._weight_files: list[Path | None] = []
        self.uses_eps = in_channels == 6

    # ----------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, name_or_dir: str = "bundled", variant: str | None = None, **kwargs) -> Detector:
        """Registry name (``bundled``, ``bundled-fast``, ``distildire-imagenet``, ``distildire-celebahq``)
        or a weights folder with a ``card.json`` (``variant`` picks one of its models)."""
        return cls.from_spec(resolve_weights(name_or_dir, variant), **kwargs)

    @classmethod
    def from_spec(cls, spec: WeightsSpec, **kwargs) -> Detector:
        kwargs.setdefault("threshold", spec.threshold)
        if spec.image_size:
            kwargs.setdefault("image_size", spec.image_size)
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
        return self.unet(x, t).sample[:, :3]

    def _student_logits(self, x: torch.Tensor, eps: torch.Tensor | None) -> torch.Tensor:
        inputs = torch.cat([x, eps], dim=1) if eps is not None else x
        inputs = inputs.to(self.student_dtype).contiguous(memory_format=self.memory_format)
        return self.student(inputs)["logit"].float().squeeze(1)

    @property
    def unet_calls_per_image(self) -> int:
        return 1 if self.uses_eps else 0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @torch.inference_mode()
    def detect(
        self, inputs: ImageInput | Sequence[ImageInput], with_dire: bool = False, batch_size: int | None = None
    ) -> list[DetectionResult]:
        """One result per input, in order. Bad inputs get ``error`` set; the others are unaffected.
        Per-stage timings of a batch are shared equally among its images."""
        if isinstance(inputs, (str, bytes, bytearray, Path)) or not isinstance(inputs, Sequence):
            inputs = [inputs]
        if with_dire and self.unet is None:
            raise ValueError("DIRE needs a diffusion UNet; this detector is image-only")
        results: list[DetectionResult] = []
        ready: list[tuple[DetectionResult, torch.Tensor]] = []
        for index, item in enumerate(inputs):
            start = time.perf_counter()
            name = str(item) if isinstance(item, (str, Path)) else f"input #{index}"
            try:
                loaded = load_image(item)
                tensor = to_model_tensor(loaded.image, self.image_size)
            except DetectorInputError as exc:
                results.append(DetectionResult(source=name, error=str(exc)))
                continue
            except Exception as exc:  # never let one odd file take the batch down
                results.append(DetectionResult(source=name, error=f"could not be processed ({type(exc).__name__}: {exc})"))
                continue
            result = DetectionResult(source=name, timings_ms={"decode": (time.perf_counter() - start) * 1e3})
            results.append(result)
            ready.append((result, tensor))

        step = batch_size or self.batch_size
        for offset in range(0, len(ready), step):
            chunk = ready[offset : offset + step]
            self._run_batch([r for r, _ in chunk], torch.stack([t for _, t in chunk]), with_dire)
        return results

    def detect_one(self, item: ImageInput, with_dire: bool = False) -> DetectionResult:
        return self.detect([item], with_dire=with_dire)[0]

    def _run_batch(self, results: list[DetectionResult], x: torch.Tensor, with_dire: bool) -> None:
        n = len(results)
        x = x.to(self.device)
        stages: dict[str, float] = {}
        eps = None
        if self.uses_eps or with_dire:
            start = time.perf_counter()
            eps = self.ddim.eps_at_start(self.eps_fn, x)
            self._sync()
            stages["unet_eps"] = time.perf_counter() - start
        start = time.perf_counter()
        logits = self._student_logits(x, eps if self.uses_eps else None)
        self._sync()
        stages["student"] = time.perf_counter() - start
        recon = dire = None
        if with_dire:
            start = time.perf_counter()
            recon = self.ddim.reconstruct(self.eps_fn, self.ddim.invert(self.eps_fn, x))
            dire = dire_to_uint8(x, recon).permute(0, 2, 3, 1).cpu().numpy()
            recon = _to_uint8_image(recon)
            self._sync()
            stages["dire"] = time.perf_counter() - start

        probs = torch.sigmoid(logits).cpu().numpy()
        logits = logits.cpu().numpy()
        images = _to_uint8_image(x)
        eps_maps = eps.permute(0, 2, 3, 1).cpu().numpy() if eps is not None else None
        calls = (1 if eps is not None else 0) + (2 * self.ddim.steps if with_dire else 0)
        for i, result in enumerate(results):
            result.p_fake = float(probs[i])
            result.logit = float(logits[i])
            result.label = "fake" if result.p_fake >= self.threshold else "real"
            result.image = images[i]
            result.eps = eps_maps[i] if eps_maps is not None else None
            if with_dire:
                result.reconstruction, result.dire = recon[i], dire[i]
            result.unet_calls = calls
            result.timings_ms.update({k: v * 1e3 / n for k, v in stages.items()})
            result.timings_ms["total"] = sum(result.timings_ms.values())

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
            "ddim_steps": self.ddim.steps,
            "unet_calls_per_image": self.unet_calls_per_image,
            "device": str(self.device),
            "preprocessing": PREPROCESSING_VERSION,
        }
