"""How models and images are named and described on the pages: model labels, attributes, captions."""
from __future__ import annotations

from dml_core.core.vocabulary import BASELINE, HEADLINE_PAIR, PRETRAINED


def model_label(model) -> str:
    """A short human name: ``log ratio · d=128`` plus seed and a ``lab`` mark when relevant."""
    meta = model.meta
    if meta["method"] in PRETRAINED:
        return "ImageNet features" if meta["method"] == BASELINE else "CLIP features"
    from dml_core.learn.methods import FINE_TUNED_SUFFIX, base_method

    parts = [base_method(meta["method"]).replace("_", " ")]
    if meta["method"].endswith(FINE_TUNED_SUFFIX):
        parts.append("CNN end to end")
    parts.append(f"d={meta['dim']}")
    if meta.get("seed"):
        parts.append(f"seed {meta['seed']}")
    if meta.get("origin") == "lab":
        parts.append(f"lab, {meta.get('steps')} steps")
    return " · ".join(parts)


def default_model_ids(catalog, wanted=tuple(f"{method}-d128-s0" for method in HEADLINE_PAIR)) -> list[str]:
    """The Compare page's default columns: binary triplet vs log-ratio at d=128, else the first two."""
    ids = catalog.model_ids()
    chosen = [m for m in wanted if m in catalog.models]
    for m in ids:
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
