"""What a file declares about its own origin — the second line of evidence beside the pixels.

``read_provenance(path_or_bytes)`` reads, from the original bytes and never from the decoded pixels:

* a C2PA manifest (Content Credentials), through the maintained ``c2pa-python`` bindings: claim
  generator, actions and their digital source type, signer, and the validation state exactly as the
  library reports it (a credential the library does not trust is said to be untrusted, a file changed
  after signing invalid);
* the IPTC digital source type in XMP (``trainedAlgorithmicMedia``, ``compositeWithTrainedAlgorithmicMedia``, …);
* EXIF Make, Model, Software and DateTime (never GPS, never owner or serial fields);
* the generation parameters that AUTOMATIC1111/Forge, ComfyUI, InvokeAI, NovelAI and Fooocus write into
  PNG text chunks (the generator, model, seed, steps — never the prompt or the workflow).

Metadata is easy to strip and to forge: it never changes p(fake). Work is bounded on hostile input
(only the first ``MAX_SCAN_BYTES`` are searched for XMP; text chunks over ``MAX_CHUNK_CHARS`` are not
parsed) and every problem becomes a note on the result, never an exception.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

#: Bytes searched for an XMP packet, and longest text chunk parsed (larger ones are noted, not read).
MAX_SCAN_BYTES = 4_000_000
MAX_CHUNK_CHARS = 200_000

IPTC_SOURCE_TYPES = {  # IPTC NewsCodes digital source types that say a generator made or changed the image
    "trainedAlgorithmicMedia": "made by a generative AI model",
    "compositeWithTrainedAlgorithmicMedia": "a composite that includes generative AI content",
    "algorithmicMedia": "made by an algorithm (no training data)",
    "compositeSynthetic": "a composite of synthetic elements",
    "digitalCapture": "captured by a digital camera",
    "negativeFilm": "scanned from a film negative",
    "positiveFilm": "scanned from film",
    "print": "scanned from a print",
    "minorHumanEdits": "captured, with minor human edits",
    "compositeCapture": "a composite of captures",
    "algorithmicallyEnhanced": "captured, then algorithmically enhanced",
    "dataDrivenMedia": "made from data",
    "digitalArt": "digital art made by a person",
    "virtualRecording": "a recording of a virtual scene",
    "composite": "a composite",
    "humanEdits": "captured, with human edits",
    "screenCapture": "a screen capture",
}
AI_SOURCE_TYPES = {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "algorithmicMedia",
                   "compositeSynthetic"}
EXIF_FIELDS = {271: "Make", 272: "Model", 305: "Software", 306: "DateTime"}  # nothing personal, nothing located
GENERATOR_SOFTWARE = re.compile(r"stable diffusion|automatic1111|comfyui|invokeai|novelai|fooocus|midjourney|dall-?e|"
                                r"firefly|imagen|flux|sdxl|diffusers|leonardo|ideogram", re.IGNORECASE)
_SOURCE_TYPE = re.compile(rb"DigitalSourceType(?:=\"|>)\s*(?:https?://cv\.iptc\.org/newscodes/digitalsourcetype/)?"
                          rb"([A-Za-z]+)")


@dataclass(frozen=True)
class Provenance:
    """What the file declares about its origin (never measured in the pixels)."""

    summary: str  # one line for people, e.g. "declares AI generation (signed C2PA by …, valid)"
    declares_ai: bool = False  # some part of the file says a generator made or changed it
    c2pa: dict | None = None  # present manifest: claim generator, actions, source type, signer, validation
    source_type: str | None = None  # IPTC digital source type from XMP (or from the C2PA actions)
    camera: dict = field(default_factory=dict)  # EXIF Make / Model / Software / DateTime
    generator: dict | None = None  # from PNG text chunks: tool and, where given, model, seed, steps, sampler
    notes: tuple[str, ...] = ()  # what could not be read, and why

    def to_dict(self) -> dict:
        return {"summary": self.summary, "declares_ai": self.declares_ai, "c2pa": self.c2pa,
                "source_type": self.source_type, "camera": self.camera or None, "generator": self.generator,
                "notes": list(self.notes)}


def _bytes_of(item: Any, limit: int) -> tuple[bytes | None, str | None]:
    if isinstance(item, (bytes, bytearray)):
        return bytes(item), None
    if isinstance(item, (str, os.PathLike)):
        path = Path(item)
        try:
            if path.stat().st_size > limit:
                return None, f"the file is over {limit // 1_000_000} MB: its metadata was not read"
            return path.read_bytes(), None
        except OSError as exc:
            return None, f"could not be read ({exc.strerror or exc})"
    return None, None  # a PIL image: no original bytes to read


# ------------------------------------------------------------------------------------------ C2PA
_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff", "AVIF": "image/avif",
         "HEIF": "image/heif", "GIF": "image/gif"}


def _c2pa(data: bytes, fmt: str | None, notes: list[str]) -> dict | None:
    mime = _MIME.get(fmt or "")
    if mime is None:
        return None
    try:
        import c2pa
    except ImportError:  # optional at import time; requirements.txt installs it
        notes.append("C2PA not checked (c2pa-python is not installed)")
        return None
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data))
    except Exception as exc:  # a bogus or damaged manifest
        notes.append(f"a C2PA manifest is present but could not be read ({_short(exc)})")
        return {"present": True, "validation": "unreadable"}
    if reader is None:
        return None
    with reader:
        try:
            store = json.loads(reader.json())
            state = reader.get_validation_state()
        except Exception as exc:
            notes.append(f"the C2PA manifest could not be read ({_short(exc)})")
            return {"present": True, "validation": "unreadable"}
    manifest = store.get("manifests", {}).get(store.get("active_manifest"), {})
    actions, source_type = [], None
    for assertion in manifest.get("assertions", []):
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            for action in (assertion.get("data") or {}).get("actions", []):
                actions.append(str(action.get("action")))
                kind = str(action.get("digitalSourceType") or "").rsplit("/", 1)[-1]
                source_type = source_type or (kind or None)
    statuses = store.get("validation_status") or []
    codes = [str(s.get("code")) for s in statuses if isinstance(s, dict)]
    signature = manifest.get("signature_info") or {}
    generator = manifest.get("claim_generator") or ", ".join(
        str(g.get("name", "")) for g in manifest.get("claim_generator_info", []) if isinstance(g, dict)) or None
    return {
        "present": True,
        "claim_generator": generator,
        "actions": actions,
        "digital_source_type": source_type,
        "signer": signature.get("common_name") or signature.get("issuer"),
        "issuer": signature.get("issuer"),
        "validation": _validation(state, codes),
        "validation_state": state,
        "validation_codes": codes,
    }


def _validation(state: str | None, codes: list[str]) -> str:
    """The library's verdict in plain words: trusted, valid (but an untrusted signing credential),
    invalid (changed after signing, or a broken signature)."""
    failures = [c for c in codes if "untrusted" not in c]
    if (state or "").lower() == "invalid" or failures:
        if any("hash.mismatch" in c.lower() for c in failures):
            return "invalid: the file was changed after signing"
        return "invalid: " + (", ".join(failures[:3]) or "the library rejected the manifest")
    if (state or "").lower() == "trusted":
        return "valid, trusted signer"
    if any("untrusted" in c for c in codes):
        return "valid, untrusted signer"
    return "valid" if state else "unknown"


def _short(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:160]}"


# ------------------------------------------------------------------------------------------ XMP, EXIF, PNG text
def _xmp_source_type(data: bytes) -> str | None:
    head = data[:MAX_SCAN_BYTES]
    start = head.find(b"<x:xmpmeta")
    if start < 0:
        return None
    end = head.find(b"</x:xmpmeta>", start)
    match = _SOURCE_TYPE.search(head[start : end if end > 0 else None])
    return match.group(1).decode("ascii", "replace") if match else None


def _camera(image: Image.Image) -> dict:
    exif = image.getexif()  # the main IFD only: the GPS IFD (0x8825) is never opened
    return {name: str(exif[tag]).strip("\x00 ")[:120] for tag, name in EXIF_FIELDS.items() if exif.get(tag)}


def _a1111(text: str) -> dict:
    """AUTOMATIC1111 / Forge / Fooocus ``parameters``: the settings line after the prompt."""
    out = {"tool": "AUTOMATIC1111-style parameters"}
    for key, name in (("Steps", "steps"), ("Seed", "seed"), ("Sampler", "sampler"), ("Model", "model"),
                      ("Model hash", "model_hash"), ("Version", "version")):
        match = re.search(rf"(?:^|, ){re.escape(key)}: ([^,\n]+)", text, re.MULTILINE)
        if match:
            out[name] = match.group(1).strip()[:80]
    if out.get("version", "").startswith("f"):
        out["tool"] = "Forge (AUTOMATIC1111-style parameters)"
    return out


def _comfy(text: str) -> dict:
    """ComfyUI ``prompt`` (node graph): the checkpoint, seed and steps of its nodes, no prompt text."""
    out = {"tool": "ComfyUI"}
    try:
        graph = json.loads(text)
    except ValueError:
        return out
    for node in graph.values() if isinstance(graph, dict) else []:
        inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
        for key, name in (("ckpt_name", "model"), ("unet_name", "model"), ("seed", "seed"), ("noise_seed", "seed"),
                          ("steps", "steps"), ("sampler_name", "sampler")):
            value = inputs.get(key)
            if isinstance(value, (str, int, float)) and name not in out:
                out[name] = str(value)[:80]
    return out


def _invoke(text: str) -> dict:
    out = {"tool": "InvokeAI"}
    try:
        meta = json.loads(text)
    except ValueError:
        return out
    model = meta.get("model")
    if isinstance(model, dict):
        model = model.get("name") or model.get("model_name")
    for name, value in (("model", model), ("seed", meta.get("seed")), ("steps", meta.get("steps")),
                        ("sampler", meta.get("scheduler"))):
        if isinstance(value, (str, int, float)):
            out[name] = str(value)[:80]
    return out


def _generator(info: dict, notes: list[str]) -> dict | None:
    """The generator named by a PNG's text chunks (its settings, never its prompt or workflow)."""
    texts = {str(k): v for k, v in info.items() if isinstance(v, str)}
    for key, value in texts.items():
        if len(value) > MAX_CHUNK_CHARS:
            notes.append(f"the text chunk '{key[:40]}' is {len(value):,} characters long: not parsed")
            texts[key] = ""
    if texts.get("parameters"):
        return _a1111(texts["parameters"])
    if texts.get("prompt") and texts["prompt"].lstrip().startswith("{"):
        return _comfy(texts["prompt"])
    if texts.get("workflow"):
        return {"tool": "ComfyUI"}
    for key in ("invokeai_metadata", "sd-metadata", "Dream"):
        if texts.get(key):
            return _invoke(texts[key]) if key != "Dream" else {"tool": "InvokeAI (legacy)"}
    if texts.get("Software", "").startswith("NovelAI") or "NovelAI" in texts.get("Source", ""):
        return {"tool": "NovelAI"}
    if texts.get("fooocus_scheme") or texts.get("Comment", "").lstrip().startswith('{"') and "Fooocus" in texts.get(
            "Comment", ""):
        return {"tool": "Fooocus"}
    return None


# ------------------------------------------------------------------------------------------ the reading
def read_provenance(item: Any, max_bytes: int = 50_000_000) -> Provenance:
    """What ``item`` (a path or the file's bytes; a PIL image has none to read) declares about its
    origin. Never raises: problems are notes on the result."""
    notes: list[str] = []
    data, problem = _bytes_of(item, max_bytes)
    if problem:
        notes.append(problem)
    if data is None:
        return Provenance("no provenance metadata read", notes=tuple(notes))
    fmt, camera, generator, c2pa_info, source_type = None, {}, None, None, None
    try:
        with Image.open(io.BytesIO(data)) as image:  # headers and metadata only: pixels are not decoded here
            fmt = image.format
            camera = _camera(image)
            generator = _generator(image.info, notes) if fmt == "PNG" else None
            software = camera.get("Software", "")
            if generator is None and GENERATOR_SOFTWARE.search(software):
                generator = {"tool": software}
    except Exception as exc:  # not an image, malformed metadata: the pixel path reports the file itself
        notes.append(f"metadata not readable ({_short(exc)})")
    try:
        source_type = _xmp_source_type(data)
    except Exception as exc:
        notes.append(f"XMP not readable ({_short(exc)})")
    c2pa_info = _c2pa(data, fmt, notes)
    if c2pa_info and c2pa_info.get("digital_source_type") and not source_type:
        source_type = c2pa_info["digital_source_type"]
    declares_ai = bool(source_type in AI_SOURCE_TYPES or generator)
    return Provenance(_summary(c2pa_info, source_type, camera, generator, declares_ai), declares_ai, c2pa_info,
                      source_type, camera, generator, tuple(notes))


def _summary(c2pa_info: dict | None, source_type: str | None, camera: dict, generator: dict | None,
             declares_ai: bool) -> str:
    """One line, always saying that it is declared by the file."""
    if c2pa_info and c2pa_info.get("validation") != "unreadable":
        who = c2pa_info.get("signer") or c2pa_info.get("claim_generator") or "an unnamed signer"
        state = c2pa_info.get("validation", "unknown")
        if declares_ai:
            return f"declares AI generation (signed C2PA by {who}, {state})"
        kind = IPTC_SOURCE_TYPES.get(source_type or "", "no AI declaration")
        return f"signed C2PA by {who} ({state}): {kind}"
    if c2pa_info:
        return "a C2PA manifest that could not be read"
    if declares_ai:
        what = (generator or {}).get("tool") or IPTC_SOURCE_TYPES.get(source_type or "", source_type)
        where = "PNG text chunks" if generator and "tool" in generator else "XMP"
        return f"declares AI generation (unsigned metadata: {what}, in {where})"
    if source_type in IPTC_SOURCE_TYPES:
        return f"declares: {IPTC_SOURCE_TYPES[source_type]} (unsigned XMP)"
    if camera.get("Make") or camera.get("Model"):
        device = " ".join(v for v in (camera.get("Make"), camera.get("Model")) if v)
        return f"camera metadata ({device}), no AI declaration"
    return "no provenance metadata"
