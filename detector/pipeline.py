"""``Detector``: images in, one ``DetectionResult`` per image out, the DistilDIRE way.

DistilDIRE: ε = the UNet's noise at t = 0 (one call), student(cat[x, ε]) → p(fake). On request the
teacher's evidence as well: DDIM inversion + reconstruction and DIRE = |x − reconstruction|. An
image-only student needs no UNet. What the model reads, how images become its inputs and how its logit
becomes a verdict is its ``ModelConfig``; this class only runs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from diffusers import UNet2DModel
from PIL import Image

from .config import Calibration, ModelConfig
from .ddim import Schedule
from .features import EpsExtractor, hwc_uint8
from .inputs import Prepared, prepare_input
from .loading import file_digest, load_student
from .models.adm import ADMConfig
from .models.student import DistilDIREStudent, classifier_input
from .models.unet import load_unet
from .preprocess import ImageInput
from .registry import WeightsSpec, read_schedule, resolve_weights
from .result import DetectionResult
from .runtime import onnx_student, runtime_for
from .tiling import aggregate
from .verdict import VerdictPolicy

_PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: Keyword options of the loaders that choose how to run, not what the model is.
RUNTIME_OPTIONS = ("device", "precision", "unet_precision", "channels_last", "batch_size", "runtime")


class Detector:
    """DistilDIRE inference: ``detect(inputs, with_dire=False)`` → ``list[DetectionResult]``.

    Runs under ``torch.inference_mode`` in batches. The UNet runs in float32 by default (as the reference:
    ε at t = 0 amplifies rounding by 100×); ``unet_precision="bf16"`` runs it under bf16 autocast (slower on
    a 2-core CPU without AMX, 1.7–9 % ε error: bench/RESULTS.md). On CUDA the student may use bf16/fp16 and
    channels_last."""

    def __init__(self, student: DistilDIREStudent, unet: UNet2DModel | None, config: ModelConfig, *,
                 device: str | torch.device | None = None, precision: str = "fp32", unet_precision: str = "fp32",
                 channels_last: bool = False, batch_size: int = 8, weight_files: Sequence[Path | None] = (),
                 dire_unet: UNet2DModel | None = None, runtime: str = "auto"):
        if student.arch.in_channels != config.in_channels:
            raise ValueError(f"{config.name}: the student reads {student.arch.in_channels} channels, the config says "
                             f"{config.inputs!r} ({config.in_channels})")
        if config.uses_eps and unet is None:
            raise ValueError("a DistilDIRE student that reads ε needs a diffusion UNet")
        if precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {list(_PRECISIONS)}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type != "cuda" and precision != "fp32":
            raise ValueError("bf16/fp16 are offered on CUDA only; the CPU path runs in fp32 for determinism")
        if self.device.type == "cuda":  # exact fp32 convolutions and matmuls for the UNet
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.config = replace(config, policy=config.policy or VerdictPolicy(), calibration=config.calibration or Calibration())
        self.student_dtype = _PRECISIONS[precision]
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.student = student.to(self.device, self.student_dtype, memory_format=self.memory_format).eval()
        # ONNX Runtime where it is installed and faster (detector.runtime); the torch modules stay the reference
        self.student_onnx = (onnx_student(self.student, config.in_channels, config.image_size)
                             if runtime_for(runtime, self.device, "student") == "onnxruntime" and precision == "fp32"
                             else None)
        self.extractor = (EpsExtractor(unet, config.schedule, config.ddim_steps, self.device, precision=unet_precision,
                                       runtime=runtime_for(runtime, self.device, "unet")) if config.uses_eps else None)
        # the teacher's DIRE map needs a diffusion model; a distilled ε network hands it to ``dire_unet``
        self.dire_extractor = (EpsExtractor(dire_unet, config.schedule, config.ddim_steps, self.device,
                                            precision=unet_precision, runtime=runtime_for(runtime, self.device, "unet"))
                               if dire_unet is not None else self.extractor)
        self.batch_size = batch_size
        self._weight_files = list(weight_files)
        self._weights_digest: str | None = None

    # ----------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, name_or_dir: str = "bundled", variant: str | None = None, **options) -> Detector:
        """Registry name (``bundled``, ``bundled-fast``, ``distildire-imagenet``, ``distildire-celebahq``,
        ``auto``) or a weights folder with a ``card.json`` (``variant`` picks one of its models). ``options``:
        how to run (``RUNTIME_OPTIONS``) and config overrides (e.g. ``threshold``, ``ddim_steps``)."""
        return cls.from_spec(resolve_weights(name_or_dir, variant), **options)

    @classmethod
    def from_spec(cls, spec: WeightsSpec, **options) -> Detector:
        return cls.from_files(spec.student, spec.unet, config=spec.config, dire_unet=spec.dire_unet, **options)

    @classmethod
    def from_files(cls, student: str | Path, unet: str | Path | None = None, adm_config: ADMConfig | None = None,
                   config: ModelConfig | None = None, dire_unet: str | Path | None = None, **options) -> Detector:
        """``student``: safetensors or official ``.pth`` (depth and input channels read from its keys).
        ``unet``: a diffusers UNet2DModel folder or a guided-diffusion ``.pt`` (converted on load;
        ``adm_config`` for non-default ADM structures). Without ``config``: the official protocol (resize +
        centre crop at the UNet's size, threshold 0.5); ``dire_unet``: the diffusion UNet of the DIRE map when
        ``unet`` is a distilled ε network; ``options`` as in ``from_pretrained``."""
        runtime = {k: options.pop(k) for k in RUNTIME_OPTIONS if k in options}
        student_model = load_student(student)
        unet_model = load_unet(unet, adm_config) if unet is not None else None
        if config is None:
            image_size = options.pop("image_size", None) or (unet_model.config.sample_size if unet_model else None)
            if image_size is None:
                raise ValueError("image_size is required for an image-only student")
            six = student_model.arch.in_channels == 6
            config = ModelConfig("custom", "custom weights", f"student {Path(student).name}", "unknown",
                                 "image+eps" if six else "image", int(image_size),
                                 schedule=(read_schedule(Path(unet)) if unet is not None else None) or Schedule())
        if "tiling" in options and options["tiling"] is not None:
            options.setdefault("image_size", options["tiling"].tile)
        config = config.with_overrides(**options)
        files = [Path(student), Path(unet) if unet else None, Path(dire_unet) if dire_unet else None]
        return cls(student_model, unet_model, config, weight_files=files,
                   dire_unet=load_unet(dire_unet) if dire_unet is not None else None, **runtime)

    # ----------------------------------------------------------------------------------- the model
    @property
    def name(self) -> str:
        return self.config.name

    @property
    def policy(self) -> VerdictPolicy:
        """The default verdict policy: the model card's."""
        return self.config.policy

    @property
    def threshold(self) -> float:
        return self.policy.threshold

    @property
    def unet(self) -> UNet2DModel | None:
        return self.extractor.unet if self.extractor else None

    @property
    def uses_eps(self) -> bool:
        return self.config.uses_eps

    def eps(self, x: torch.Tensor) -> torch.Tensor:
        """DistilDIRE's ε at t = 0 for a batch in [−1, 1] (one UNet call)."""
        return self.extractor(x)

    def raw_logits(self, x: torch.Tensor, eps: torch.Tensor | None) -> torch.Tensor:
        """The student's uncalibrated logit per input (B,)."""
        return self.student_logits(classifier_input(self.config.inputs, x, eps))

    def student_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """The student on assembled inputs (B×C×H×W), by the runtime in use: uncalibrated logits (B,)."""
        if self.student_onnx is not None:
            return self.student_onnx(inputs).squeeze(1)
        inputs = inputs.to(self.device, self.student_dtype).contiguous(memory_format=self.memory_format)
        return self.student(inputs)["logit"].float().squeeze(1)

    @property
    def runtimes(self) -> dict[str, str | None]:
        """Which runtime runs each network (``detector.runtime``)."""
        return {"student": "onnxruntime" if self.student_onnx is not None else "torch",
                "eps_unet": self.extractor.runtime if self.extractor else None,
                "dire_unet": self.dire_extractor.runtime if self.dire_extractor else None}

    def sync(self) -> None:
        """Wait for the device (for timings)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # ----------------------------------------------------------------------------------- detect
    def detect(self, inputs: ImageInput | Sequence[ImageInput], with_dire: bool = False, batch_size: int | None = None,
               policy: VerdictPolicy | None = None, max_file_bytes: int | None = None,
               on_unet_calls: Callable[[int], None] | None = None, provenance: bool = True) -> list[DetectionResult]:
        """One result per input, in order. Bad inputs get ``error`` set; the others are unaffected.
        ``policy`` (default: the model card's) sets each result's label and verdict; a file over
        ``max_file_bytes`` is refused unread (an error for it alone). ``on_unet_calls(n)`` hears of every UNet
        call as it completes (n = inputs in that call), for progress bars. ``provenance``: also read what
        each file declares about its origin (``detector.provenance``; it never changes p_fake)."""
        if isinstance(inputs, (str, bytes, bytearray, Path, Image.Image)) or not isinstance(inputs, Sequence):
            inputs = [inputs]
        if with_dire and not self.uses_eps:
            raise ValueError("DIRE needs a diffusion UNet; this detector is image-only")
        prepared = [self.prepare(item, index, max_file_bytes, provenance) for index, item in enumerate(inputs)]
        return self.score(prepared, with_dire, batch_size, policy, on_unet_calls)

    def detect_one(self, item: ImageInput, with_dire: bool = False, policy: VerdictPolicy | None = None) -> DetectionResult:
        return self.detect([item], with_dire=with_dire, policy=policy)[0]

    def prepare(self, item: ImageInput, index: int = 0, max_file_bytes: int | None = None,
                provenance: bool = True) -> Prepared:
        """Decode and preprocess one input (no model call); safe in DataLoader workers."""
        return prepare_input(item, self.config, index, max_file_bytes, provenance)

    @torch.inference_mode()
    def score(self, prepared: Sequence[Prepared], with_dire: bool = False, batch_size: int | None = None,
              policy: VerdictPolicy | None = None, on_unet_calls: Callable[[int], None] | None = None
              ) -> list[DetectionResult]:
        """Run the model on prepared inputs (``prepare``) in batches; their results, in order."""
        policy = policy or self.policy
        scored: dict[int, DetectionResult] = {}
        ready = [i for i, (_, tensor) in enumerate(prepared) if tensor is not None]
        step = batch_size or self.batch_size
        for offset in range(0, len(ready), step):
            chunk = ready[offset : offset + step]
            done = self._run_batch([prepared[i] for i in chunk], with_dire, on_unet_calls)
            scored.update(zip(chunk, done))
        return [scored.get(i, result).with_policy(policy) for i, (result, _) in enumerate(prepared)]

    def _run_batch(self, prepared: Sequence[Prepared], with_dire: bool,
                   on_unet_calls: Callable[[int], None] | None) -> list[DetectionResult]:
        """Score one batch; per-stage timings are shared among its images in proportion to their inputs."""
        counts = [len(tensor) for _, tensor in prepared]
        x = torch.cat([tensor for _, tensor in prepared]).to(self.device)
        stages: dict[str, float] = {}
        eps = None
        if self.uses_eps:
            start = time.perf_counter()
            eps = self.eps(x)
            self.sync()
            stages["unet_eps"] = time.perf_counter() - start
            if on_unet_calls:
                on_unet_calls(len(x))
        start = time.perf_counter()
        tile_logits = self.config.calibration.logit(self.raw_logits(x, eps).cpu())
        self.sync()
        stages["student"] = time.perf_counter() - start

        # one logit per image: its only input, or its tiles aggregated by the card's rule
        per_image = list(torch.split(tile_logits, counts))
        rule = self.config.tiling.aggregate if self.config.tiling is not None else None
        image_logits = torch.tensor([float(z[0]) if rule is None else aggregate(z, rule) for z in per_image])
        shown = [int(z.argmax()) for z in per_image]  # the tile displayed as evidence
        starts = np.cumsum([0, *counts[:-1]])
        picked = torch.tensor([int(o) + s for o, s in zip(starts, shown)], dtype=torch.long).to(self.device)

        recon = dire = None
        if with_dire:  # the teacher's evidence, for the displayed input of each image
            start = time.perf_counter()
            recon, dire = self.dire_extractor.dire(x[picked], on_unet_calls)
            self.sync()
            stages["dire"] = time.perf_counter() - start

        probs = torch.sigmoid(image_logits).numpy()
        images = hwc_uint8(x[picked])
        eps_maps = eps[picked].permute(0, 2, 3, 1).cpu().numpy() if eps is not None else None
        total, dire_calls = sum(counts), self.config.dire_unet_calls if with_dire else 0
        results = []
        for i, (result, _) in enumerate(prepared):
            share = counts[i] / total
            timings = {**result.timings_ms,
                       **{k: v * 1e3 * (share if k != "dire" else 1 / len(prepared)) for k, v in stages.items()}}
            timings["total"] = sum(timings.values())
            grid = result.grid
            results.append(replace(
                result, p_fake=float(probs[i]), logit=float(image_logits[i]), image=images[i],
                eps=eps_maps[i] if eps_maps is not None else None,
                tile_index=shown[i] if grid is not None else None,
                tile_p_fake=torch.sigmoid(per_image[i]).numpy().reshape(grid.rows, grid.cols) if grid is not None else None,
                reconstruction=recon[i] if with_dire else None, dire=dire[i] if with_dire else None,
                unet_calls=(counts[i] if eps is not None else 0) + dire_calls, timings_ms=timings))
        return results

    # ----------------------------------------------------------------------------------- report
    @property
    def weights_digest(self) -> str | None:
        """SHA-256 (first 16 hex digits) of the weight files, computed on first use."""
        if self._weights_digest is None and any(self._weight_files):
            self._weights_digest = file_digest(self._weight_files)
        return self._weights_digest

    def describe(self) -> dict:
        """The model config plus how it runs here (weights hash, device, precision), for reports."""
        return {
            **self.config.to_dict(),
            "unsure_band": list(self.policy.band),
            "weights_sha256_16": self.weights_digest,
            "student_depth": self.student.arch.depth,
            "unet_precision": self.extractor.precision if self.extractor else None,
            "runtime": self.runtimes,
            "device": str(self.device),
        }
