"""Detector end to end on tiny random models: batching, bad inputs, DIRE on request, loading paths."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY_SIZE, encode, make_photo

from detector import Detector, WeightsNotFoundError, resolve_weights
from detector.models import DistilDIREStudent


@pytest.fixture(scope="module")
def detector(tiny_weights):
    return Detector.from_pretrained(str(tiny_weights))


def test_batch_with_a_bad_file_returns_the_others(detector, image_files):
    paths = [image_files[k] for k in ("good_png", "truncated", "good_jpg", "text", "empty")]
    results = detector.detect(paths)
    assert [r.source for r in results] == [str(p) for p in paths]
    good, bad = [results[0], results[2]], [results[1], results[3], results[4]]
    for r in good:
        assert r.ok and 0.0 <= r.p_fake <= 1.0
        assert r.label == ("fake" if r.p_fake >= detector.threshold else "real")
        assert r.image.shape == (TINY_SIZE, TINY_SIZE, 3) and r.image.dtype == np.uint8
        assert r.eps.shape == (TINY_SIZE, TINY_SIZE, 3) and r.unet_calls == 1
        assert r.dire is None and r.timings_ms["unet_eps"] > 0
    assert "truncated" in bad[0].error and "not an image" in bad[1].error and "empty" in bad[2].error
    assert all(r.p_fake is None and r.label is None for r in bad)


def test_inputs_as_bytes_pil_and_path_agree(detector, image_files):
    path = image_files["good_png"]
    by_path, by_bytes, by_pil = detector.detect([path, path.read_bytes(), make_photo(seed=1)])
    assert by_path.p_fake == pytest.approx(by_bytes.p_fake, abs=1e-6)
    assert by_path.p_fake == pytest.approx(by_pil.p_fake, abs=1e-6)
    assert by_bytes.source == "input #1"


def test_batching_does_not_change_scores_and_cpu_is_deterministic(detector):
    images = [encode(make_photo(seed=s)) for s in range(5)]
    together = [r.p_fake for r in detector.detect(images, batch_size=5)]
    one_by_one = [detector.detect_one(img).p_fake for img in images]
    again = [r.p_fake for r in detector.detect(images, batch_size=2)]
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert again == [r.p_fake for r in detector.detect(images, batch_size=2)]


def test_student_sees_eps(tiny_weights):
    """The 6-channel student's score depends on ε: replacing the UNet changes it (PyTorch runtime: an
    ONNX Runtime graph is a snapshot of the weights it was exported with)."""
    detector = Detector.from_pretrained(str(tiny_weights), runtime="torch")
    image = encode(make_photo(seed=4))
    before = detector.detect_one(image).p_fake
    original = detector.unet.conv_out.bias.clone()
    try:
        with torch.no_grad():
            detector.unet.conv_out.bias.add_(0.5)
        assert detector.detect_one(image).p_fake != pytest.approx(before, abs=1e-6)
    finally:
        with torch.no_grad():
            detector.unet.conv_out.bias.copy_(original)


def test_dire_on_request(detector, image_files):
    result = detector.detect([image_files["good_png"]], with_dire=True)[0]
    assert result.unet_calls == 41
    assert result.dire.shape == result.reconstruction.shape == (TINY_SIZE, TINY_SIZE, 3)
    assert result.dire.dtype == np.uint8
    # DIRE is ⌊127.5·|x − rec|⌋ on [−1, 1] values = |x − rec| in 0…255 units, within rounding
    expected = np.abs(result.image.astype(int) - result.reconstruction.astype(int))
    assert np.abs(result.dire.astype(int) - expected).max() <= 1
    assert result.dire.max() > 0
    assert result.timings_ms["dire"] > result.timings_ms["unet_eps"]


def test_image_only_variant_needs_no_unet(tiny_weights):
    spec = resolve_weights(str(tiny_weights))
    assert spec.config.inputs == "image+eps"
    card = json.loads((tiny_weights / "card.json").read_text())
    fast = Detector.from_files(tiny_weights / card["variants"]["image-only"]["student"], image_size=TINY_SIZE)
    result = fast.detect_one(encode(make_photo()))
    assert result.ok and result.unet_calls == 0 and result.eps is None
    with pytest.raises(ValueError, match="image-only"):
        fast.detect([encode(make_photo())], with_dire=True)


def test_describe_names_model_and_hash(detector):
    info = detector.describe()
    assert info["weights_sha256_16"] and len(info["weights_sha256_16"]) == 16
    assert info["inputs"] == "image+eps" and info["unet_calls_per_image"] == 1
    assert info["image_size"] == TINY_SIZE and info["dire_unet_calls"] == 40


def test_official_files_load_without_extra_arguments(tmp_path):
    """Official-format student (.pth, module. prefixes) + guided-diffusion .pt UNet, nothing else given."""

    from adm_reference import ADMReference, rerandomise

    student = DistilDIREStudent(depth=18, in_channels=6)
    torch.save({"model": {f"module.{k}": v for k, v in student.state_dict().items()}, "optimizer": {},
                "total_steps": 1}, tmp_path / "student.pth")
    adm = ADMReference(model_channels=32, head_channels=64)  # 64 head channels, as the real ADM
    rerandomise(adm)
    torch.save(adm.state_dict(), tmp_path / "adm.pt")
    detector = Detector.from_files(tmp_path / "student.pth", tmp_path / "adm.pt", image_size=64)
    assert detector.student.arch.depth == 18 and detector.unet.config.out_channels == 6
    result = detector.detect_one(encode(make_photo()))
    assert result.ok and result.eps.shape == (64, 64, 3)


def test_missing_weights_have_clear_errors(tmp_path, monkeypatch):
    from detector import registry

    monkeypatch.setattr(registry, "BUNDLED_DIR", tmp_path / "nothing")
    with pytest.raises(WeightsNotFoundError, match="train/"):
        resolve_weights("bundled")
    monkeypatch.setenv("DISTILDIRE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError, match="imagenet-distil-dire-11e.pth.*from_files"):
        resolve_weights("distildire-imagenet")
    with pytest.raises(WeightsNotFoundError, match="unknown weights"):
        resolve_weights("no-such-model")


def test_official_weights_found_in_local_cache(tmp_path, monkeypatch):
    """Files dropped in $DISTILDIRE_CACHE are used without any network access."""
    monkeypatch.setenv("DISTILDIRE_CACHE", str(tmp_path))
    (tmp_path / "celebahq-distil-dire-34e.pth").write_bytes(b"x")
    (tmp_path / "256x256_diffusion_uncond.pt").write_bytes(b"x")
    spec = resolve_weights("distildire-celebahq")
    assert spec.student.name == "celebahq-distil-dire-34e.pth" and spec.unet.name == "256x256_diffusion_uncond.pt"
    assert spec.config.image_size == 256 and "CC BY-NC" in spec.config.license


def test_bf16_unet_eps_error_is_bounded(tiny_weights):
    """bf16 autocast for the UNet (an opt-in speed option): ε stays within a few % of fp32, and it really
    runs in bf16 (the error is not zero)."""
    exact = Detector.from_pretrained(str(tiny_weights))
    fast = Detector.from_pretrained(str(tiny_weights), unet_precision="bf16")
    x = torch.rand(4, 3, TINY_SIZE, TINY_SIZE) * 2 - 1
    eps32, eps16 = exact.eps(x), fast.eps(x)
    relative = float((eps16 - eps32).norm() / eps32.norm())
    assert eps16.dtype == torch.float32 and 1e-4 < relative < 0.1
    assert fast.describe()["unet_precision"] == "bf16"
    with pytest.raises(ValueError, match="bf16"):
        Detector.from_pretrained(str(tiny_weights), unet_precision="fp16")


def test_results_are_immutable_and_survive_pickling(detector, image_files):
    """Scans pickle results out of DataLoader workers; nothing edits a result after the pipeline made it."""
    import dataclasses
    import pickle

    from detector.verdict import VerdictPolicy

    result = detector.detect_one(image_files["good_png"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.p_fake = 1.0
    with pytest.raises(ValueError, match="read-only"):
        result.image[0, 0, 0] = 0
    with pytest.raises(TypeError):
        result.timings_ms["total"] = 0.0
    copy = pickle.loads(pickle.dumps(result))
    assert copy.p_fake == result.p_fake and dict(copy.timings_ms) == dict(result.timings_ms)
    assert not copy.image.flags.writeable
    stricter = VerdictPolicy((result.p_fake + 1.0) / 2, unsure_margin=0.0)  # a threshold above this score
    judged = result.with_policy(stricter)
    assert judged.label == judged.verdict == "real" and judged.p_fake == result.p_fake
    assert result.label == detector.policy.label(result.p_fake)  # the original keeps its own verdict


def test_a_distilled_eps_network_scores_and_the_diffusion_unet_gives_dire(tmp_path):
    """A weights folder with ``eps-unet/`` (a distilled ε network) beside ``unet/``: the student reads ε from the
    distilled network, DIRE runs on the diffusion UNet, and the cost model times the two apart."""
    from detector.costs import CostModel
    from detector.features import EpsExtractor
    from detector.models import build_unet, small_unet_config
    from detector.registry import save_weights

    torch.manual_seed(1)
    diffusion = build_unet(small_unet_config(TINY_SIZE, (32, 64), (1,)))
    narrow = build_unet(small_unet_config(TINY_SIZE, (16, 32), (), norm_num_groups=16))
    student = DistilDIREStudent(depth=10, in_channels=6)
    folder = save_weights(tmp_path / "w", {"distildire": (student, "image+eps")}, unet=diffusion, eps_unet=narrow,
                          card={"name": "narrow-test", "threshold": 0.5, "license": "test",
                                "variants": {"distildire": {"eps_network": "narrow", "dire_network": "the diffusion UNet"}}})
    spec = resolve_weights(str(folder))
    assert spec.unet.name == "eps-unet" and spec.dire_unet.name == "unet"
    detector = Detector.from_spec(spec)
    image = encode(make_photo(seed=5))
    result = detector.detect([image], with_dire=True)[0]
    x = detector.prepare(image)[1]  # the model input
    narrow_eps = EpsExtractor(narrow.float())(x)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(result.eps, narrow_eps, atol=1e-5)  # ε from the distilled network
    expected_recon, _ = EpsExtractor(diffusion.float()).dire(x)
    assert np.abs(result.reconstruction.astype(int) - expected_recon[0].astype(int)).max() <= 1  # DIRE: diffusion UNet
    assert result.unet_calls == 41
    assert detector.describe()["dire_network"] == "the diffusion UNet"
    assert any("on the diffusion UNet" in line for line in detector.config.summary_lines())
    costs = CostModel(detector)
    costs.observe(0.01, 1)
    costs.observe(0.04, 1, "dire")
    assert costs.estimate_seconds(2) == pytest.approx(0.02)
    assert costs.estimate_seconds(1, with_dire=True) == pytest.approx(0.01 + 40 * 0.04)


def test_onnxruntime_gives_the_pytorch_numbers_and_is_exported_once(tiny_weights, tmp_path, monkeypatch):
    """ONNX Runtime (where installed) runs the student and the ε network: the same ε within 1e-5 relative and
    the same p_fake within 1e-5; the export is cached per weights and made anew when they change."""
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("DISTILDIRE_CACHE", str(tmp_path))
    monkeypatch.delenv("DISTILDIRE_RUNTIME", raising=False)
    images = [encode(make_photo(seed=s)) for s in range(3)]
    reference = Detector.from_pretrained(str(tiny_weights), runtime="torch")
    fast = Detector.from_pretrained(str(tiny_weights), runtime="onnxruntime")
    assert fast.describe()["runtime"] == {"student": "onnxruntime", "eps_unet": "onnxruntime", "dire_unet": "onnxruntime"}
    assert reference.describe()["runtime"]["student"] == "torch"
    auto = Detector.from_pretrained(str(tiny_weights))  # "auto": ONNX Runtime where installed
    assert auto.describe()["runtime"] == fast.describe()["runtime"]
    x = torch.cat([reference.prepare(image)[1] for image in images])
    eps_torch, eps_onnx = reference.eps(x), fast.eps(x)
    assert float((eps_onnx - eps_torch).norm() / eps_torch.norm()) < 1e-5
    np.testing.assert_allclose([r.p_fake for r in fast.detect(images)], [r.p_fake for r in reference.detect(images)],
                               atol=1e-5)
    exported = sorted(tmp_path.rglob("*.onnx"))
    assert len(exported) == 2  # one student, one UNet
    stamps = [p.stat().st_mtime_ns for p in exported]
    Detector.from_pretrained(str(tiny_weights), runtime="onnxruntime")
    assert [p.stat().st_mtime_ns for p in exported] == stamps and len(list(tmp_path.rglob("*.onnx"))) == 2
    changed = Detector.from_pretrained(str(tiny_weights), runtime="torch")
    with torch.no_grad():
        changed.student.student_head[2].weight.add_(0.1)
    from detector.runtime import onnx_student

    onnx_student(changed.student, 6, TINY_SIZE)
    assert len(list(tmp_path.rglob("*.onnx"))) == 3  # other weights, another file


def test_runtime_choice(monkeypatch):
    from detector.runtime import onnxruntime_available, runtime_for

    monkeypatch.delenv("DISTILDIRE_RUNTIME", raising=False)
    assert runtime_for("auto", "cpu") == ("onnxruntime" if onnxruntime_available() else "torch")
    assert runtime_for("auto", "cpu", "unet") == ("onnxruntime" if onnxruntime_available() else "torch")
    assert runtime_for("torch", "cpu") == "torch"
    assert runtime_for("auto", "cuda") == "torch"
    monkeypatch.setenv("DISTILDIRE_RUNTIME", "torch")
    assert runtime_for("auto", "cpu") == "torch"
    with pytest.raises(ValueError, match="runtime must be one of"):
        runtime_for("openvino", "cpu")
    with pytest.raises(ValueError, match="CPU only"):
        runtime_for("onnxruntime", "cuda")
    monkeypatch.setattr("detector.runtime.onnxruntime_available", lambda: True)
    assert runtime_for("onnxruntime", "cpu", "unet") == "onnxruntime"  # asked for: every network
    monkeypatch.setattr("detector.runtime.onnxruntime_available", lambda: False)
    monkeypatch.delenv("DISTILDIRE_RUNTIME")
    assert runtime_for("auto", "cpu") == "torch"  # not installed: PyTorch, silently
    with pytest.raises(ValueError, match="not installed"):
        runtime_for("onnxruntime", "cpu")
