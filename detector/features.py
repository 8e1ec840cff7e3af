"""The diffusion features a model reads or shows: DistilDIRE's ε at t = 0 (one UNet call) and the
teacher's DIRE map (DDIM inversion + reconstruction, 2 × steps calls). ``Detector`` and the training
caches compute ε through the same ``EpsExtractor``, so cached and served ε are the same numbers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from diffusers import UNet2DModel

from .ddim import DDIM, Schedule, dire_to_uint8
from .preprocess import to_uint8
from .runtime import onnx_unet, runtime_for


class EpsExtractor:
    """ε at t = 0 from a diffusion UNet (float32 by default; ``precision="bf16"`` runs it under autocast)."""

    def __init__(self, unet: UNet2DModel, schedule: Schedule | None = None, ddim_steps: int = 20,
                 device: str | torch.device | None = None, max_batch: int | None = None, precision: str = "fp32",
                 runtime: str = "torch"):
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
        # ONNX Runtime (detector.runtime): fp32 on CPU only; the torch module stays the reference
        self.onnx = (onnx_unet(self.unet, unet.config.sample_size)
                     if runtime_for(runtime, self.device, "unet") == "onnxruntime" and precision == "fp32" else None)

    @property
    def runtime(self) -> str:
        return "onnxruntime" if self.onnx is not None else "torch"

    def eps_fn(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The UNet's ε prediction (first 3 output channels; learned-variance channels dropped), float32."""
        if self.onnx is not None:
            return self.onnx(x, t)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            out = self.unet(x.contiguous(memory_format=torch.channels_last), t).sample[:, :3]
        return out.float().contiguous()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """ε at t = 0 for a batch in [−1, 1] (one UNet call per image, in chunks of ``max_batch``)."""
        x = x.to(self.device)
        return torch.cat([self.ddim.eps_at_start(self.eps_fn, part) for part in x.split(self.max_batch)])

    @torch.inference_mode()
    def dire(self, x: torch.Tensor, on_unet_calls: Callable[[int], None] | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """The teacher's evidence for a batch in [−1, 1]: (reconstruction, DIRE map), both B×H×W×3 uint8.
        ``on_unet_calls(n)`` hears of every UNet call (n = inputs in it), for progress bars."""
        def eps_fn(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            out = self.eps_fn(xt, t)
            if on_unet_calls:
                on_unet_calls(len(xt))
            return out

        reconstruction = self.ddim.reconstruct(eps_fn, self.ddim.invert(eps_fn, x))
        dire = dire_to_uint8(x, reconstruction).permute(0, 2, 3, 1).cpu().numpy()
        return hwc_uint8(reconstruction), dire


def hwc_uint8(batch: torch.Tensor) -> np.ndarray:
    """B×3×H×W in [−1, 1] → B×H×W×3 uint8 numpy (for pictures)."""
    return to_uint8(batch).permute(0, 2, 3, 1).cpu().numpy()
