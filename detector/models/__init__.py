"""Model definitions: the ResNet classifiers and the diffusion UNets (built and loaded only here)."""

from .adm import ADM_256_UNCOND, ADMConfig, convert_adm_state_dict, unet_config_for_adm
from .student import DistilDIREStudent, StudentArch, build_student_from_state_dict, unwrap_checkpoint
from .unet import build_unet, load_unet, small_unet_config, unet_from_adm_state_dict

__all__ = [
    "ADM_256_UNCOND", "ADMConfig", "DistilDIREStudent", "StudentArch", "build_student_from_state_dict",
    "build_unet", "convert_adm_state_dict", "load_unet", "small_unet_config", "unet_config_for_adm",
    "unet_from_adm_state_dict", "unwrap_checkpoint",
]
