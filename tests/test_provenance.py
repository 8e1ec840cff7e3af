"""Provenance read from the file's own bytes, with fixtures made here: C2PA manifests signed by a
throw-away certificate chain, the same files changed after signing, IPTC source types in XMP, PNG text
chunks of A1111 / ComfyUI / InvokeAI, camera EXIF with GPS, and hostile metadata."""

from __future__ import annotations

import datetime
import io
import json
import time

import pytest
from conftest import encode, make_photo
from PIL import Image, PngImagePlugin

from detector.provenance import read_provenance

c2pa = pytest.importorskip("c2pa")
AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def _certificate_chain() -> tuple[bytes, bytes]:
    """(leaf + CA certificates as PEM, leaf private key as PEM): ES256, the leaf with SubjectKeyIdentifier,
    AuthorityKeyIdentifier and an extended key usage, issued by a CA made the same way."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "DistilDIRE tests")])

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("Test CA")).issuer_name(name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("Test Generator")).issuer_name(ca.subject)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    key = leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return chain, key


@pytest.fixture(scope="module")
def signer():
    chain, key = _certificate_chain()
    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))


def _sign(data: bytes, mime: str, signer) -> bytes:
    manifest = {"claim_generator_info": [{"name": "test-generator", "version": "1.0"}], "title": "generated",
                "assertions": [{"label": "c2pa.actions",
                                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": AI}]}}]}
    out = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, mime, io.BytesIO(data), out)
    return out.getvalue()


@pytest.mark.parametrize("fmt, mime", [("JPEG", "image/jpeg"), ("PNG", "image/png")])
def test_signed_generated_image_reads_as_valid_with_an_untrusted_test_signer(signer, fmt, mime):
    signed = _sign(encode(make_photo(96, 64, seed=1), fmt), mime, signer)
    found = read_provenance(signed)
    assert found.declares_ai and found.c2pa["present"] and found.c2pa["actions"] == ["c2pa.created"]
    assert found.source_type == "trainedAlgorithmicMedia"
    assert found.c2pa["validation"] == "valid, untrusted signer"  # the test CA is trusted by no one
    assert found.summary.startswith("declares AI generation (signed C2PA by") and "untrusted signer" in found.summary


def test_a_file_changed_after_signing_reads_as_invalid(signer):
    signed = bytearray(_sign(encode(make_photo(96, 64, seed=2), "JPEG", quality=90), "image/jpeg", signer))
    signed[-200] ^= 0xFF  # one byte of the image data changed after signing
    found = read_provenance(bytes(signed))
    assert found.c2pa["validation"] == "invalid: the file was changed after signing"
    assert found.summary.endswith("invalid: the file was changed after signing)")
    assert "assertion.dataHash.mismatch" in found.c2pa["validation_codes"]  # as the library reports it


def _xmp(source_type: str) -> bytes:
    return (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
            b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
            b'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" Iptc4xmpExt:DigitalSourceType='
            b'"http://cv.iptc.org/newscodes/digitalsourcetype/' + source_type.encode() +
            b'"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')


@pytest.mark.parametrize("source_type, ai", [("trainedAlgorithmicMedia", True),
                                             ("compositeWithTrainedAlgorithmicMedia", True),
                                             ("digitalCapture", False), ("screenCapture", False)])
def test_iptc_digital_source_type_in_xmp(source_type, ai):
    buffer = io.BytesIO()
    make_photo().save(buffer, "JPEG", xmp=_xmp(source_type))
    found = read_provenance(buffer.getvalue())
    assert found.source_type == source_type and found.declares_ai is ai and found.c2pa is None
    if ai:
        assert found.summary.startswith("declares AI generation (unsigned metadata") and "XMP" in found.summary
    else:
        assert found.summary.startswith("declares: ") and found.summary.endswith("(unsigned XMP)")


def _png(**chunks: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    make_photo().save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def test_generator_chunks_name_the_tool_and_never_the_prompt():
    a1111 = read_provenance(_png(parameters="a secret prompt about my cat\nNegative prompt: blurry\nSteps: 30, "
                                            "Sampler: DPM++ 2M, CFG scale: 7, Seed: 1234, Model: sdxl_base, Version: v1.9"))
    assert a1111.generator == {"tool": "AUTOMATIC1111-style parameters", "steps": "30", "seed": "1234",
                               "sampler": "DPM++ 2M", "model": "sdxl_base", "version": "v1.9"}
    assert "AUTOMATIC1111" in a1111.summary and "secret" not in json.dumps(a1111.to_dict())
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 20, "sampler_name": "euler",
                                                       "positive": ["6", 0]}},
             "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev.safetensors"}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a secret prompt"}}}
    comfy = read_provenance(_png(prompt=json.dumps(graph), workflow=json.dumps({"nodes": []})))
    assert comfy.generator == {"tool": "ComfyUI", "seed": "42", "steps": "20", "sampler": "euler",
                               "model": "flux1-dev.safetensors"}
    assert comfy.declares_ai and "secret" not in json.dumps(comfy.to_dict())
    invoke = read_provenance(_png(invokeai_metadata=json.dumps({"positive_prompt": "secret", "seed": 7, "steps": 25,
                                                               "model": {"name": "juggernaut"}})))
    assert invoke.generator["tool"] == "InvokeAI" and invoke.generator["model"] == "juggernaut"
    assert "secret" not in json.dumps(invoke.to_dict())


def test_camera_exif_is_shown_and_gps_never_is():
    image = make_photo()
    exif = image.getexif()
    exif[271], exif[272], exif[306] = "Canon", "EOS R5", "2024:05:01 10:00:00"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.0), "E", (2.0, 17.0, 40.0)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    found = read_provenance(buffer.getvalue())
    assert found.camera == {"Make": "Canon", "Model": "EOS R5", "DateTime": "2024:05:01 10:00:00"}
    assert found.summary == "camera metadata (Canon EOS R5), no AI declaration" and not found.declares_ai
    text = json.dumps(found.to_dict())
    assert "48" not in text and "GPS" not in text and "29.0" not in text


def test_hostile_metadata_is_bounded_and_noted(tmp_path, signer):
    start = time.perf_counter()
    huge = read_provenance(_png(parameters="Steps: 1, " + "x" * 1_000_000))
    assert huge.generator is None and any("not parsed" in n for n in huge.notes)
    broken_xmp = io.BytesIO()
    make_photo().save(broken_xmp, "JPEG", xmp=b"<x:xmpmeta><<<DigitalSourceType=\"\xff\xfe" * 1000)
    assert read_provenance(broken_xmp.getvalue()).source_type is None
    signed = bytearray(_sign(encode(make_photo(96, 64, seed=3), "JPEG"), "image/jpeg", signer))
    middle = signed.find(b"c2pa.signature") - 300  # inside the manifest store: its claim, scrambled
    signed[middle : middle + 200] = bytes(range(200))
    noted = read_provenance(bytes(signed))  # a damaged manifest: a state or a note, never an exception
    assert noted.c2pa is not None and noted.summary
    assert noted.c2pa["validation"] == "unreadable" or noted.c2pa["validation"].startswith("invalid")
    assert read_provenance(b"not an image at all").notes  # the pixel path reports the file; here: a note
    assert read_provenance(tmp_path / "missing.jpg").notes
    assert time.perf_counter() - start < 10


def test_a_plain_photo_declares_nothing():
    found = read_provenance(encode(make_photo(), "PNG"))
    assert found.summary == "no provenance metadata" and not found.declares_ai and found.notes == ()
    assert read_provenance(Image.new("RGB", (8, 8))).summary == "no provenance metadata read"
