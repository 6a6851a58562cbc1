"""How models and images are named and described on the pages: model labels, attributes, captions."""
from __future__ import annotations

from dml_core.core.vocabulary import BASELINE, EMBEDDER_KINDS, HEADLINE_PAIR, PRETRAINED


def model_kind(meta: dict) -> str:
    """A key of ``EMBEDDER_KINDS``: what a stored model's training changed (its ``meta``)."""
    from dml_core.learn.methods import embedder_kind

    return "pretrained" if meta["method"] in PRETRAINED else embedder_kind(meta["method"], meta.get("config"))


def kind_label(meta: dict) -> str:
    """The model's kind as people read it: "pretrained", "head on frozen features", "fine-tuned backbone" …"""
    return EMBEDDER_KINDS.get(model_kind(meta), model_kind(meta))


def model_label(model, with_kind: bool = True) -> str:
    """A short human name with the model's kind: ``log ratio · fine-tuned backbone · d=128``, plus
    seed and a ``lab`` mark when relevant; ``with_kind=False`` leaves the kind out (for headers
    that show it on their own line)."""
    meta = model.meta
    kind = [kind_label(meta)] if with_kind else []
    if meta["method"] in PRETRAINED:
        return " · ".join(["ImageNet features" if meta["method"] == BASELINE else "CLIP features", *kind])
    from dml_core.learn.methods import base_method

    parts = [base_method(meta["method"]).replace("_", " "), *kind, f"d={meta['dim']}"]
    if meta.get("seed"):
        parts.append(f"seed {meta['seed']}")
    if meta.get("origin") == "lab":
        parts.append(f"lab, {meta.get('steps')} steps")
    return " · ".join(parts)


#: Compare's default columns, first found first: the fine-tuned pair where the build has it
#: (the paper's comparison where the backbone learns), else the heads'.
DEFAULT_PAIRS = (tuple(f"{method}_ft-d128-s0" for method in HEADLINE_PAIR), tuple(f"{method}-d128-s0" for method in HEADLINE_PAIR))


def default_model_ids(catalog, pairs=DEFAULT_PAIRS) -> list[str]:
    """The Compare page's default columns: binary triplet vs log-ratio at d=128 (fine-tuned when
    both are built, else heads on frozen features), else the first two models."""
    for pair in pairs:
        if all(m in catalog.models for m in pair):
            return list(pair)
    chosen = [m for m in pairs[-1] if m in catalog.models]
    for m in catalog.model_ids():
        if len(chosen) >= 2:
            break
        if m not in chosen:
            chosen.append(m)
    return chosen


def image_meta(data, index: int) -> dict:
    """One image's own meta entries (``{"activity": "walk", ...}``) from a TaskData."""
    return {key: values[index] for key, values in data.meta.items()}


def query_caption(task, data, index: int) -> str:
    """A one-line description of an image from its meta (activity, room type, first caption …)."""
    meta = image_meta(data, index)
    if "captions" in meta and len(meta["captions"]):
        return str(meta["captions"][0])
    return " · ".join(f"{a.replace('_', ' ')} {format_value(meta[a])}" for a in task.attributes[:2] if a in meta)


def format_value(value) -> str:
    """A meta value as shown on badges and in descriptions (floats to 2 decimals)."""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def attribute_line(task, meta: dict) -> str:
    """Markdown: the task's attributes of one image, bold names, on one line."""
    return " · ".join(f"**{a.replace('_', ' ')}** {format_value(meta[a])}" for a in task.attributes if a in meta)


def image_facts(task, data, index: int) -> str:
    """Markdown: every attribute of one image (bold names), then its captions as a list."""
    meta = image_meta(data, index)
    facts = attribute_line(task, meta)
    captions = meta.get("captions")
    if captions is not None and len(captions):
        facts += "\n\n" + "\n".join(f"- {caption}" for caption in captions)
    return facts
