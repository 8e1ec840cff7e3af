"""DistilDIRE: tell diffusion-generated images from real ones with one UNet call per image.

    from detector import Detector
    results = Detector.from_pretrained("bundled").detect(["photo.jpg"])
"""

from .config import Calibration, ModelConfig
from .ddim import DDIM, Schedule
from .features import EpsExtractor
from .loading import load_student
from .pipeline import Detector
from .preprocess import DetectorInputError, load_image, to_model_tensor
from .registry import (
    WeightsNotFoundError,
    WeightsSpec,
    available_names,
    choose_auto,
    describe,
    download,
    model_config,
    resolve,
    resolve_weights,
)
from .result import DetectionResult

__all__ = [
    "DDIM",
    "Calibration",
    "DetectionResult",
    "Detector",
    "DetectorInputError",
    "EpsExtractor",
    "ModelConfig",
    "Schedule",
    "WeightsNotFoundError",
    "WeightsSpec",
    "available_names",
    "choose_auto",
    "describe",
    "download",
    "load_image",
    "load_student",
    "model_config",
    "resolve",
    "resolve_weights",
    "to_model_tensor",
]
__version__ = "0.1.0"
