"""Where a network runs on a CPU: PyTorch, or ONNX Runtime where it is installed and was measured faster.

On the 2-core machines this project targets (a free CPU Space), ONNX Runtime ran every network faster than
PyTorch with the same outputs (within 1e-5 relative): the bundled students 1.6× (13.6 vs 22.1 ms per 16
tiles), the bundled UNet's ε 1.17× (260 vs 303 ms per 16 tiles, A/B interleaved) and the official ADM-256
ε 1.25× (7.4 vs 9.2 s per image); OpenVINO and torch.compile gained less (``python -m bench.cpu``;
bench/RESULTS.md). So "auto" means ONNX Runtime on CPU wherever it is installed, PyTorch otherwise and on
GPUs. ``OnnxNetwork`` wraps one ``torch.nn.Module`` with a tensor output, is exported once per weights to
``$DISTILDIRE_CACHE`` (default ``~/.cache/distildire``; a network over protobuf's 2 GB keeps its weights
as external data beside the graph: 2.2 GB for the ADM, once), and keeps one session per thread count (the
server's model thread sets the count from the machine's load before each job).

``runtime_for(requested, device, network)`` turns a request into the runtime of one network;
``$DISTILDIRE_RUNTIME`` (``torch``, ``onnxruntime``) overrides "auto".
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path

import torch

RUNTIMES = ("auto", "torch", "onnxruntime")
#: Which networks "auto" hands to ONNX Runtime: those it was measured faster for (module docstring).
AUTO_ONNX = {"student": True, "unet": True}
#: Part of every cached file's key: raise it when the export itself changes.
EXPORT_VERSION = 2


def onnxruntime_available() -> bool:
    """ONNX Runtime and the ``onnx`` package PyTorch's exporter writes with (requirements.txt has both)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def runtime_for(requested: str = "auto", device: torch.device | str = "cpu", network: str = "student") -> str:
    """The runtime of one network (``network``: "student" or "unet"): "torch" or "onnxruntime" (CPU only)."""
    if requested not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES} (got {requested!r})")
    if requested == "auto":
        requested = os.environ.get("DISTILDIRE_RUNTIME", "auto")
        if requested not in RUNTIMES:
            raise ValueError(f"$DISTILDIRE_RUNTIME must be one of {RUNTIMES} (got {requested!r})")
    if torch.device(device).type != "cpu":
        if requested == "onnxruntime":
            raise ValueError("the onnxruntime runtime is offered on CPU only")
        return "torch"
    if requested == "onnxruntime" and not onnxruntime_available():
        raise ValueError("runtime 'onnxruntime' asked for, but onnxruntime is not installed (pip install onnxruntime)")
    if requested == "auto":
        return "onnxruntime" if AUTO_ONNX[network] and onnxruntime_available() else "torch"
    return requested


def cache_dir() -> Path:
    return Path(os.environ.get("DISTILDIRE_CACHE", Path.home() / ".cache" / "distildire")) / "onnx"


def module_digest(module: torch.nn.Module, examples: tuple[torch.Tensor, ...]) -> str:
    """What the exported graph depends on: the export itself, the class, every parameter and buffer, the input
    ranks and dtypes, and the torch version that traced it."""
    digest = hashlib.sha256(f"{EXPORT_VERSION}|{type(module).__qualname__}|{torch.__version__}".encode())
    for x in examples:
        digest.update(f"{tuple(x.shape[1:])}|{x.dtype}".encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:20]


def axes(x: torch.Tensor) -> dict[int, str]:
    """Dynamic axes of an input: the batch, and an image's height and width."""
    return {0: "batch", **({2: "height", 3: "width"} if x.dim() == 4 else {})}


class OnnxNetwork:
    """A network run by ONNX Runtime: call it with CPU tensors (any batch size and image size), get the output
    back as a float32 tensor. Exported on first use and cached on disk by ``module_digest``."""

    def __init__(self, module: torch.nn.Module, examples: tuple[torch.Tensor, ...], name: str):
        self.name = name
        self.input_names = [f"input{i}" for i in range(len(examples))]
        self.path = cache_dir() / f"{name}-{module_digest(module, examples)}" / "model.onnx"
        if not self.path.is_file():
            self._export(module, examples)
        self._sessions: dict[int, object] = {}
        self._lock = threading.Lock()

    def _export(self, module: torch.nn.Module, examples: tuple[torch.Tensor, ...]) -> None:
        """Export into a folder of its own (the graph, and the weights as external data when over 2 GB), then
        move it into place: two processes exporting at once both end with a whole folder."""
        cache_dir().mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f"{self.path.parent.name}.", dir=cache_dir()))
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
            torch.onnx.export(module.eval(), examples, str(partial / "model.onnx"), dynamo=False, opset_version=17,
                              input_names=self.input_names, output_names=["output"],
                              dynamic_axes={n: axes(x) for n, x in zip([*self.input_names, "output"], [*examples, examples[0]])})
        try:
            partial.rename(self.path.parent)
        except OSError:  # another process finished first: its folder is as good
            shutil.rmtree(partial, ignore_errors=True)

    def session(self, threads: int):
        """The session for ``threads`` intra-op threads (created on first use; threads do not spin when idle,
        so a waiting session leaves the cores to others)."""
        with self._lock:
            if threads not in self._sessions:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._sessions[threads] = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
            return self._sessions[threads]

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        feed = {name: t.detach().contiguous().cpu().numpy() for name, t in zip(self.input_names, tensors)}
        return torch.from_numpy(self.session(torch.get_num_threads()).run(None, feed)[0])


class EpsOutput(torch.nn.Module):
    """A diffusers UNet as a plain network: (x, t) → the ε channels (exportable)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x, t).sample[:, :3]


class LogitOutput(torch.nn.Module):
    """A DistilDIRE student as a plain network: x → logit (exportable)."""

    def __init__(self, student: torch.nn.Module):
        super().__init__()
        self.student = student

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.student(x)["logit"]


def _onnx_or_none(module: torch.nn.Module, examples: tuple[torch.Tensor, ...], name: str) -> OnnxNetwork | None:
    """The network under ONNX Runtime; None (PyTorch runs it) when it cannot be exported."""
    try:
        return OnnxNetwork(module.float().eval(), examples, name)
    except Exception as exc:  # an exporter or runtime that cannot take this network: PyTorch, said once
        warnings.warn(f"{name}: ONNX Runtime unavailable for this network ({type(exc).__name__}: {exc}); PyTorch runs it",
                      stacklevel=3)
        return None


def onnx_unet(unet: torch.nn.Module, size: int) -> OnnxNetwork | None:
    """The ε network under ONNX Runtime, or None where it stays on PyTorch."""
    return _onnx_or_none(EpsOutput(unet), (torch.zeros(2, 3, size, size), torch.zeros(2, dtype=torch.long)), "unet")


def onnx_student(student: torch.nn.Module, in_channels: int, size: int) -> OnnxNetwork | None:
    """A student under ONNX Runtime, or None where it stays on PyTorch."""
    return _onnx_or_none(LogitOutput(student), (torch.zeros(2, in_channels, size, size),), "student")
