"""DistilDIRE: tell diffusion-generated images from real ones with one UNet call per image.

    from detector import Detector
    results = Detector.from_pretrained("bundled").detect(["photo.jpg"])
"""

from .ddim import DDIM, Schedule
from .pipeline import DetectionResult, Detector, EpsExtractor, load_student
from .preprocess import DetectorInputError, load_image, to_model_tensor
from .registry import (
    WeightsNotFoundError, WeightsSpec, available_names, choose_auto, describe, download, resolve, resolve_weights,
)

__all__ = [
    "DDIM", "DetectionResult", "Detector", "EpsExtractor", "DetectorInputError", "Schedule", "WeightsNotFoundError",
    "WeightsSpec", "available_names", "choose_auto", "describe", "download", "load_image", "load_student", "resolve",
    "resolve_weights", "to_model_tensor",
]
__version__ = "0.1.0"
