"""ADM (guided-diffusion) → diffusers UNet2DModel: exact, strict, and provably not the naive split."""

from __future__ import annotations

import pytest
import torch
from adm_reference import ADMReference, rerandomise

from detector.cli import main as cli_main
from detector.models import (
    ADM_256_UNCOND,
    ADMConfig,
    build_unet,
    convert_adm_state_dict,
    load_unet,
    unet_config_for_adm,
)

SMALL = ADMConfig(image_size=64, model_channels=32, num_head_channels=16)  # ADM-256 topology, narrow, ≥2 heads


@pytest.fixture(scope="module")
def reference() -> ADMReference:
    model = ADMReference(model_channels=32, head_channels=16).eval()
    rerandomise(model, seed=1)
    return model


def _relative_error(reference: torch.nn.Module, unet: torch.nn.Module) -> float:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    worst = 0.0
    with torch.no_grad():
        for t in (0, 500, 999):
            timesteps = torch.tensor([t, t])
            expected = reference(x, timesteps)
            got = unet(x, timesteps).sample
            worst = max(worst, ((expected - got).abs().max() / expected.abs().max()).item())
    return worst


def test_every_attention_block_has_several_heads(reference):
    heads = [m.heads for m in reference.modules() if hasattr(m, "heads")]
    assert heads and min(heads) >= 2  # one head would make the naive split correct and the test blind


def test_converted_unet_matches_reference(reference):
    unet = build_unet(unet_config_for_adm(SMALL)).eval()
    unet.load_state_dict(convert_adm_state_dict(reference.state_dict(), SMALL), strict=True)
    assert _relative_error(reference, unet) <= 1e-5


def test_naive_qkv_split_fails(reference):
    """Negative control: treating legacy qkv as [q_all | k_all | v_all] (chunk(3)) must be visibly wrong."""
    naive = ADMConfig(**{**SMALL.__dict__, "use_new_attention_order": True})
    unet = build_unet(unet_config_for_adm(naive)).eval()
    unet.load_state_dict(convert_adm_state_dict(reference.state_dict(), naive), strict=True)
    assert _relative_error(reference, unet) > 0.05


def test_full_size_key_and_parameter_counts():
    """The real 256×256 uncond layout (on the meta device: shapes only, no memory)."""
    with torch.device("meta"):
        gd_state = ADMReference(model_channels=256, head_channels=64).state_dict()
        unet = build_unet(unet_config_for_adm(ADM_256_UNCOND))
    converted = convert_adm_state_dict(gd_state, ADM_256_UNCOND)
    expected = unet.state_dict()
    assert len(gd_state) == 566
    assert len(converted) == 630 == len(expected)
    assert sum(v.numel() for v in gd_state.values()) == 552_814_086
    assert sum(v.numel() for v in converted.values()) == 552_814_086
    assert {k: tuple(v.shape) for k, v in converted.items()} == {k: tuple(v.shape) for k, v in expected.items()}


def test_unexpected_key_is_refused(reference):
    state = dict(reference.state_dict())
    state["input_blocks.99.0.in_layers.0.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="unexpected ADM key"):
        convert_adm_state_dict(state, SMALL)


def test_pt_file_loads_directly_and_via_cli(reference, tmp_path):
    """A guided-diffusion .pt is converted on load; `convert-adm` writes an equivalent diffusers folder."""
    checkpoint = tmp_path / "adm_small.pt"
    torch.save(reference.state_dict(), checkpoint)
    direct = load_unet(checkpoint, SMALL).eval()
    assert _relative_error(reference, direct) <= 1e-5

    out = tmp_path / "converted"
    code = cli_main(["convert-adm", str(checkpoint), str(out), "--image-size", "64", "--attention-resolutions", "8,4,2",
                     "--num-head-channels", "16"])
    assert code == 0
    assert (out / "diffusion_pytorch_model.safetensors").is_file() and (out / "scheduler_config.json").is_file()
    assert _relative_error(reference, load_unet(out).eval()) <= 1e-5


def test_cli_reports_mismatched_flags(reference, tmp_path, capsys):
    checkpoint = tmp_path / "adm_small.pt"
    torch.save(reference.state_dict(), checkpoint)
    code = cli_main(["convert-adm", str(checkpoint), str(tmp_path / "out"), "--image-size", "64",
                     "--attention-resolutions", "16"])  # attention on the wrong levels
    assert code == 1
    assert "does not match" in capsys.readouterr().err
