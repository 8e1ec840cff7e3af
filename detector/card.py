"""A model's card in words, from its ``ModelConfig`` and, for weights trained here, its ``card.json``: the
Markdown the app's *Model card* tab shows and the listing ``python -m detector models`` prints. Never
downloads anything."""

from __future__ import annotations

import os

from .registry import OFFICIAL, REGISTRY, WeightsNotFoundError, describe, is_local, model_config, resolve_weights


def model_label(name: str) -> str:
    """A model's name for people (its registry label; a folder's path otherwise). No I/O."""
    return REGISTRY[name].label if name in REGISTRY else name


def model_choices(default: str) -> list[tuple[str, str]]:
    """(label, name) for a model menu: the default and the bundled models always; official presets when their
    files are on this machine, or when ``DISTILDIRE_SHOW_OFFICIAL=1`` says the server may download them when
    someone first runs one. Registry metadata and file checks only: never a download."""
    names = [default] + [n for n in ("bundled", "bundled-fast") if n != default]
    show_all = os.environ.get("DISTILDIRE_SHOW_OFFICIAL") == "1"
    names += [name for name in OFFICIAL if name != default and (show_all or is_local(name))]
    return [(model_label(n), n) for n in names]


def _metrics_table(metrics: dict) -> list[str]:
    out = ["**Out-of-fold metrics** (each image scored by a model that never saw its generator family or photo "
           "source; threshold and calibration chosen the same way):", "",
           "| model | ROC-AUC | AP | TPR | FPR | AUC after JPEG q75 | photos flagged after blur / median / denoise / 0.5× | ECE |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, m in metrics.items():
        clean, cond = m["clean"], m.get("conditions", {})
        smoothed = " / ".join(f"{cond[k]['fpr']:.2f}" for k in ("blur_1.0", "median_3", "denoise", "rescale_0.5x") if k in cond)
        jpeg = cond.get("jpeg_q75", {}).get("auc")
        label = f"{name} (previous run, not re-evaluated)" if m.get("carried_over") else name
        out.append(f"| {label} | {clean.get('auc', float('nan')):.3f} | {clean.get('ap', float('nan')):.3f} | "
                   f"{clean['tpr']:.2f} | {clean['fpr']:.2f} | {'—' if jpeg is None else f'{jpeg:.3f}'} | "
                   f"{smoothed or '—'} | {clean['ece']:.3f} |")
    return out


def _families_table(families: dict) -> list[str]:
    out = ["**Generated images of generators it never saw, found at the card threshold** (each family scored by "
           "the fold model trained without it):", "", "| family | found | ROC-AUC vs photos |", "| --- | ---: | ---: |"]
    return out + [f"| {name} | {f['found']} of {f['n']} | {f['auc']:.2f} |"
                  for name, f in sorted(families.items(), key=lambda kv: -kv[1]["n"])]


def card_markdown(name: str) -> str:
    """The model card as Markdown: the config's summary for every model; for an official preset, its files
    (from the registry, nothing downloaded); for weights trained here, the card's metrics, threshold rule,
    per-family finds, limits and data."""
    try:
        spec = None if name in REGISTRY and REGISTRY[name].files else resolve_weights(name)
        config = spec.config if spec else model_config(name)
    except (WeightsNotFoundError, FileNotFoundError, ValueError) as exc:
        return f"Model card of '{name}' cannot be read: {exc}"
    out = [f"### {config.label}", config.description, "", *(f"- {line}" for line in config.summary_lines()), ""]
    if spec is None:
        entry = describe(name)
        state = "on this server" if is_local(name) else "not on this server yet: downloaded when it first runs"
        out += [f"**Files** ({state}):", ""] + [f"- `{f.filename}` (~{f.approx_mb:,.0f} MB) from {f.origin}"
                                                   for f in entry.files]
        return "\n".join(out)
    card = spec.card
    metrics = card.get("metrics", {})
    if metrics:
        out += _metrics_table(metrics)
    if card.get("eps_network", {}).get("trade"):  # a distilled ε network: what it trades for its speed
        out += ["", f"**ε network:** {card['eps_network']['trade']}"]
    if card.get("threshold_policy"):
        out += ["", f"**Threshold:** {card['threshold_policy']}."]
    families = metrics.get("student", {}).get("families", {})
    if families and all("found" in f for f in families.values()):
        out += ["", *_families_table(families)]
    if card.get("limits"):
        out += ["", "**What it can and cannot detect:**", ""] + [f"- {line}" for line in card["limits"]]
    data = card.get("data")
    if data and "images" in data:
        families = ", ".join(f"{k} ({v})" for k, v in data.get("generator_families", {}).items())
        out += ["", f"**Data:** {data['images']['generated']} generated images and {data['images']['photos']} photos. "
                f"Generator families: {families}."]
    return "\n".join(out)


def models_listing() -> str:
    """Every registry model: name, label, its config's summary, download size and whether it is here."""
    blocks = []
    for name, entry in REGISTRY.items():
        try:
            config = model_config(name) if not entry.files else entry.config
        except (WeightsNotFoundError, FileNotFoundError, ValueError):
            config = entry.config
        size = f"; download ~{entry.download_mb / 1000:.1f} GB" if entry.files else ""
        state = "local" if is_local(name) else "not downloaded"
        lines = config.summary_lines()
        blocks.append("\n".join([f"{name}  —  {config.label} ({state}{size})", *(f"    {line}" for line in lines)]))
    return "\n\n".join(blocks)


def share_flagged(card: dict, variant: str | None, threshold: float, kind: str = "fake") -> tuple[float, int] | None:
    """The share of the card's out-of-fold validation images of ``kind`` ("fake": generated images of
    generator families the scoring model never saw; "real": photos of unseen sources) scored at or above
    ``threshold``, read from its reference histograms (linear within a bin), and how many images that is
    of. None when the card has no histograms for ``variant``."""
    reference = card.get("reference_histograms", {})
    counts = reference.get(variant or "", {}).get(kind)
    if not counts or not sum(counts):
        return None
    edges, above = reference["edges"], 0.0
    for low, high, n in zip(edges[:-1], edges[1:], counts):
        above += n * min(1.0, max(0.0, (high - threshold) / (high - low)))
    return above / sum(counts), sum(counts)


def verdict_caveat(card: dict, variant: str | None, threshold: float) -> str:
    """One plain sentence on what a low score is worth at ``threshold``, from the model card's numbers."""
    found = share_flagged(card, variant, threshold)
    scope = ("Drawings, screenshots, graphics and heavily edited images are outside what it was trained on; "
             "its verdict on them means little.")
    if found is None:
        return (f"How many generated images this model misses at threshold {threshold:.2f} is not measured here: "
                f"\"no sign found\" means only that, not that the image is a photograph. {scope}")
    share, n = found
    return (f"At threshold {threshold:.2f} this model flags about {share:.0%} of the generated images in its "
            f"validation ({n} images of generators it never saw in training) and misses the other {1 - share:.0%}: "
            f"\"no sign found\" is not proof of a photograph. {scope}")
