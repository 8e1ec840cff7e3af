"""The registry lists and describes without I/O; ``download`` fetches with a transport and checks
SHA-256; ``auto`` picks the official model only where it can run well."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace

import pytest
import torch
from conftest import encode, make_photo

from detector import Calibration, Detector, ModelConfig, WeightsNotFoundError, registry
from detector.models import DistilDIREStudent
from detector.registry import ModelEntry, RemoteFile, choose_auto, describe, download, is_local

_BLOCKING = {"on": False}


def _audit(event: str, args) -> None:  # audit hooks cannot be removed: this one only acts while "on"
    if _BLOCKING["on"] and (event in ("open", "os.listdir", "os.scandir") or event.startswith("socket.")):
        raise AssertionError(f"I/O while listing models: {event} {args!r:.120}")


sys.addaudithook(_audit)


def _refuse(*args, **kwargs):
    raise AssertionError(f"I/O while listing models: stat {args!r:.120}")


@pytest.fixture
def official_cache(tmp_path, monkeypatch):
    """An empty model cache, offline; files placed by the test."""
    monkeypatch.setenv("DISTILDIRE_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("DISTILDIRE_OFFICIAL_ON_CPU", raising=False)
    return tmp_path


def _place_official_files(folder) -> None:
    """Random weights in the official layouts: a DistilDIRE .pth (``module.``-prefixed, with optimizer
    state) and a guided-diffusion ADM state dict of a small configuration."""
    from adm_reference import ADMReference, rerandomise

    student = DistilDIREStudent(depth=18, in_channels=6)
    torch.save({"model": {f"module.{k}": v for k, v in student.state_dict().items()}, "optimizer": {}},
               folder / "imagenet-distil-dire-11e.pth")
    adm = ADMReference(model_channels=32, head_channels=64)
    rerandomise(adm)
    torch.save(adm.state_dict(), folder / registry.ADM_FILENAME)


def test_listing_and_describing_do_no_io(monkeypatch):
    import app

    with monkeypatch.context() as guarded:
        guarded.setattr("os.stat", _refuse)
        guarded.setattr("os.lstat", _refuse)
        _BLOCKING["on"] = True
        try:
            names = registry.available_names()
            described = [describe(name).to_dict() for name in names]
            labels = [app.model_label(name) for name in names]
        finally:
            _BLOCKING["on"] = False
    assert {"bundled", "bundled-fast", "distildire-imagenet", "distildire-celebahq"} <= set(names)
    official = described[names.index("distildire-imagenet")]
    assert official["unet_calls_per_image"] == 1 and official["image_size"] == 256 and "CC BY-NC" in official["license"]
    assert [f["filename"] for f in official["files"]] == ["imagenet-distil-dire-11e.pth", registry.ADM_FILENAME]
    assert all(labels)
    with pytest.raises(WeightsNotFoundError, match="unknown model"):
        describe("no-such-model")


def test_the_guards_would_catch_io(monkeypatch, tmp_path):  # the no-I/O test above cannot pass vacuously
    with monkeypatch.context() as guarded:
        guarded.setattr("os.stat", _refuse)
        with pytest.raises(AssertionError, match="I/O while listing"):
            is_local("distildire-imagenet")  # a stat of the cache
    _BLOCKING["on"] = True
    try:
        with pytest.raises(AssertionError, match="I/O while listing"):
            open(tmp_path / "x", "w").close()
        with pytest.raises(AssertionError, match="I/O while listing"):
            __import__("socket").create_connection(("127.0.0.1", 9), timeout=0.1)
    finally:
        _BLOCKING["on"] = False


def test_download_with_a_stub_transport_checks_sha256(official_cache, monkeypatch):
    payload = b"weights" * 100
    good = ModelEntry(ModelConfig("stub-model", "Stub", "test entry", "test", "image", 32),
                      files=(RemoteFile("stub.bin", "student", url="https://example.invalid/stub.bin", approx_mb=0.001,
                                        sha256=hashlib.sha256(payload).hexdigest()),))
    monkeypatch.setitem(registry.REGISTRY, good.name, good)
    fetched = []

    def transport(remote: RemoteFile, folder):
        fetched.append(remote.filename)
        (folder / remote.filename).write_bytes(payload)
        return folder / remote.filename

    assert not is_local("stub-model")
    paths = download("stub-model", transport)
    assert paths["student"].read_bytes() == payload and is_local("stub-model")
    download("stub-model", transport)
    assert fetched == ["stub.bin"]  # already local: not fetched again

    bad = ModelEntry(replace(good.config, name="stub-bad"),
                     files=(RemoteFile("bad.bin", "student", url="https://example.invalid/bad.bin", sha256="0" * 64),))
    monkeypatch.setitem(registry.REGISTRY, bad.name, bad)
    with pytest.raises(WeightsNotFoundError, match="SHA-256 mismatch"):
        download("stub-bad", transport)
    assert not (official_cache / "bad.bin").exists()  # a corrupt download is not left behind


def test_offline_download_names_the_files_and_where_to_put_them(official_cache):
    with pytest.raises(WeightsNotFoundError) as info:
        download("distildire-imagenet")
    message = str(info.value)
    assert "imagenet-distil-dire-11e.pth" in message and registry.ADM_FILENAME in message
    assert str(official_cache) in message and "python -m detector download distildire-imagenet" in message


def test_cli_download_and_models(official_cache, capsys):
    from detector.cli import main

    assert main(["download", "distildire-celebahq"]) == 1
    assert "celebahq-distil-dire-34e.pth" in capsys.readouterr().err
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "distildire-imagenet" in listing and "not downloaded" in listing and "bundled" in listing
    official = registry.REGISTRY["distildire-imagenet"].config
    assert all(line in listing for line in official.summary_lines())  # the same ModelConfig the app's card shows


def test_auto_prefers_official_only_where_it_runs_well(official_cache, monkeypatch):
    name, why = choose_auto(cuda=False)
    assert name == "bundled" and "no GPU" in why
    assert choose_auto(cuda=True) [0] == "bundled"  # GPU, but the files are not here and fetching is off
    name, why = choose_auto(cuda=True, fetch=True)  # offline: the fetch fails, bundled it is, and it says why
    assert name == "bundled" and "could not be fetched" in why

    _place_official_files(official_cache)
    name, why = choose_auto(cuda=True)
    assert name == "distildire-imagenet" and "GPU" in why
    assert choose_auto(cuda=False)[0] == "bundled"
    name, why = choose_auto(cuda=False, allow_cpu=True)
    assert name == "distildire-imagenet" and "opted in" in why

    monkeypatch.setenv("DISTILDIRE_OFFICIAL_ON_CPU", "1")  # the operator's switch, as the app reads it
    detector = Detector.from_pretrained("auto")
    assert detector.name == "distildire-imagenet" and detector.config.image_size == 256 and detector.config.tiling is None
    assert detector.threshold == 0.5 and detector.config.calibration == Calibration()  # the authors' protocol
    result = detector.detect_one(encode(make_photo(300, 260)))
    assert result.ok and result.unet_calls == 1 and result.eps.shape == (256, 256, 3)


def test_auto_fetches_with_the_transport_when_allowed(official_cache):
    def transport(remote: RemoteFile, folder):
        _place_official_files(folder)
        return folder / remote.filename

    name, why = choose_auto(cuda=True, fetch=True, transport=transport)
    assert name == "distildire-imagenet" and "downloaded" in why and is_local("distildire-imagenet")


BUNDLED_CARD = registry.BUNDLED_DIR / "card.json"


@pytest.mark.skipif(not BUNDLED_CARD.is_file(), reason="bundled weights not exported yet")
@pytest.mark.parametrize("name", ["bundled", "bundled-fast"])
def test_bundled_registry_entries_match_their_card(name):
    """The registry declares a bundled model's structure without reading its card; the card (written by
    train/export.py) is the truth. Everything but the names, the licence wording and the card's own
    numbers (threshold, unsure band, calibration) must agree."""
    entry = registry.REGISTRY[name]
    card = json.loads(BUNDLED_CARD.read_text())
    from_card = ModelConfig.from_card(card, entry.bundled_variant, name)
    declared = replace(entry.config, policy=from_card.policy, calibration=from_card.calibration,
                       label=from_card.label, description=from_card.description, license=from_card.license)
    assert declared == from_card
    assert from_card.license.startswith(entry.config.license.split(" (")[0])
    resolved = registry.model_config(name)  # what Detector, the report, the CLI and the app read
    assert resolved.label == entry.label and resolved.tiling == entry.config.tiling and resolved.policy == from_card.policy


def test_model_config_round_trips_through_the_card():
    from detector.tiling import TilingConfig
    from detector.verdict import VerdictPolicy

    config = ModelConfig("m", "M", "a test model", "MIT", "image+eps", 64, TilingConfig(64, 9, "top25_mean"),
                         Calibration(1.5, -0.25), VerdictPolicy(0.7, 0.1, 0.05), eps_network="a UNet", ddim_steps=10)
    card = {"license": "MIT", "variants": {"v": config.to_card()}}
    assert ModelConfig.from_card(card, "v", "m") == config
    assert config.unet_calls_per_image == 9 and config.dire_unet_calls == 20
    official = registry.REGISTRY["distildire-imagenet"].config
    assert ModelConfig.from_card({"license": official.license, "variants": {"o": official.to_card()}}, "o",
                                 official.name) == official
    assert official.unet_calls_per_image == 1 and official.dire_unet_calls == 40
