"""Reader for MPII Human Pose annotations in the widely used JSON conversion.

Format (HRNet ``data/mpii/annot/{train,valid}.json``): a JSON list of person entries
``{"image": "015601864.jpg", "joints": [[x, y]] * 16, "joints_vis": [0 or 1] * 16,
"center": [x, y], "scale": s}`` with MPII joint order, MATLAB (1-based) pixel coordinates,
and ``scale * 200`` = the height of the person's box in pixels. Images live in ``images/``
beside the JSON file (or beside its folder, as in HRNet's ``mpii/annot`` + ``mpii/images``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from dml_core.core.images import ImageInputError, read_image_file
from dml_core.data.tasks.base import DataFormatError, TaskData

N_JOINTS = 16
_DEFAULT_JSON_NAMES = ("annot/train.json", "train.json", "annot/valid.json", "valid.json")


def _resolve_paths(path, images_dir) -> tuple[Path, Path]:
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: file not found")
    if path.is_dir():
        found = [path / name for name in _DEFAULT_JSON_NAMES if (path / name).is_file()]
        if not found:
            raise DataFormatError(f"{path}: no MPII annotation JSON found (looked for {', '.join(_DEFAULT_JSON_NAMES)})")
        json_path = found[0]
    else:
        json_path = path
    if images_dir is not None:
        images = Path(images_dir)
    else:
        candidates = [json_path.parent / "images", json_path.parent.parent / "images"]
        images = next((c for c in candidates if c.is_dir()), candidates[0])
    if not images.is_dir():
        raise DataFormatError(f"{images}: images directory not found (pass images_dir=...)")
    return json_path, images


def _number(value, json_path, where) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataFormatError(f"{json_path}: {where} must be a finite number, got {value!r}")
    return float(value)


def _parse_entry(entry, k, json_path):
    if not isinstance(entry, dict):
        raise DataFormatError(f"{json_path}: entry {k} is a {type(entry).__name__}, expected an object")
    for key in ("image", "joints", "center", "scale"):
        if key not in entry:
            raise DataFormatError(f"{json_path}: entry {k} has no {key!r} field")
    image = entry["image"]
    if not isinstance(image, str) or not image:
        raise DataFormatError(f"{json_path}: entry {k}: 'image' must be a file name, got {image!r}")
    joints = entry["joints"]
    if not isinstance(joints, list) or len(joints) != N_JOINTS:
        count = len(joints) if isinstance(joints, list) else type(joints).__name__
        raise DataFormatError(f"{json_path}: entry {k}: 'joints' has {count} joints, expected {N_JOINTS}")
    xy = np.empty((N_JOINTS, 2))
    for j, joint in enumerate(joints):
        if not isinstance(joint, list) or len(joint) < 2:
            raise DataFormatError(f"{json_path}: entry {k}: joint {j} must be [x, y], got {joint!r}")
        xy[j] = [_number(v, json_path, f"entry {k} joint {j}") for v in joint[:2]]
    vis = entry.get("joints_vis", [1] * N_JOINTS)
    if not isinstance(vis, list) or len(vis) != N_JOINTS:
        raise DataFormatError(f"{json_path}: entry {k}: 'joints_vis' must be a list of {N_JOINTS} values")
    vis = np.array([_number(v, json_path, f"entry {k} joints_vis") for v in vis]) > 0
    center = entry["center"]
    if not isinstance(center, list) or len(center) != 2:
        raise DataFormatError(f"{json_path}: entry {k}: 'center' must be [x, y], got {center!r}")
    center = np.array([_number(v, json_path, f"entry {k} center") for v in center])
    scale = _number(entry["scale"], json_path, f"entry {k} scale")
    if scale <= 0:
        raise DataFormatError(f"{json_path}: entry {k}: 'scale' must be positive, got {scale}")
    return image, xy, vis, center, scale


def _read_photo(file: Path, json_path: Path, k: int) -> Image.Image:
    if not file.is_file():
        raise DataFormatError(f"{file}: image named by {json_path} entry {k} not found")
    try:
        return read_image_file(file, exif_transpose=False)
    except ImageInputError as error:
        raise DataFormatError(f"{file}: cannot read image ({error})") from None


def load_mpii_json(path, size: int, images_dir=None, missing: str = "skip", crop_factor: float = 1.25,
                   one_based: bool = True, limit: int | None = None, on_skip=None) -> TaskData:
    """Read MPII person entries, crop a square around each person and resize it to ``size``.

    Crop: side = ``scale * 200 * crop_factor`` pixels centred on ``center`` (HRNet first moves
    the centre down by ``15 * scale`` pixels and enlarges the box 1.25x; we do the same).
    ``one_based``: coordinates are MATLAB 1-based, as in the MPII release and HRNet's JSON;
    1 is subtracted from joints and centre. Pixels outside the photo are black.

    Labels: (N, 16, 2) float32, (x - x0 + 0.5) / side, (y - y0 + 0.5) / side for 0-based
    pixel coordinates (x, y) and crop corner (x0, y0): the same convention as the generator
    (pixel i covers [i, i + 1) before normalisation). Values can leave [0, 1] when a limb
    leaves the crop.

    Missing joints: a joint is missing when its ``joints_vis`` is 0 or a coordinate is
    negative (MPII writes -1 for unannotated joints). ``missing="skip"`` (default) drops
    people with any missing joint; ``missing="keep"`` keeps them with NaN coordinates for
    the missing joints (``label_distance`` leaves NaN joints out of its mean).
    ``meta["joints_vis"]`` holds the 16 flags either way.

    Images are decoded with ``dml_core.core.images``' limits, without EXIF rotation (the joints
    refer to the stored pixels). ``on_skip(where, reason)``: when given, an entry that cannot
    be used (malformed, missing joints under ``missing="skip"``, a missing or unreadable
    image) is reported through it and left out instead of raising (or, for missing joints,
    instead of being dropped silently).
    """
    if missing not in ("skip", "keep"):
        raise ValueError(f"missing must be 'skip' or 'keep', got {missing!r}")
    json_path, images = _resolve_paths(path, images_dir)
    try:
        entries = json.loads(json_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataFormatError(f"{json_path}: not valid JSON ({error})") from None
    if not isinstance(entries, list):
        raise DataFormatError(f"{json_path}: expected a JSON list of person entries, got {type(entries).__name__}")

    crops, labels, names, vis_flags = [], [], [], []
    cache: dict[str, Image.Image] = {}
    for k, entry in enumerate(entries):
        if limit is not None and len(crops) >= limit:
            break
        try:
            name, xy, vis, center, scale = _parse_entry(entry, k, json_path)
        except DataFormatError as error:
            if on_skip is None:
                raise
            on_skip(f"entry {k}", str(error).removeprefix(f"{json_path}: ").removeprefix(f"entry {k}: "))
            continue
        if one_based:
            xy = xy - 1.0
            center = center - 1.0
        present = vis & (xy >= 0).all(axis=1)
        if missing == "skip" and not present.all():
            if on_skip is not None:
                on_skip(f"entry {k} ({name})", f"joints {', '.join(map(str, np.flatnonzero(~present)))} not annotated")
            continue
        if center[0] >= 0:  # HRNet: the annotated centre sits high on the body
            center = center + np.array([0.0, 15.0 * scale])
        side = max(1, int(round(scale * 200 * crop_factor)))
        x0 = int(round(center[0] - side / 2))
        y0 = int(round(center[1] - side / 2))
        if name not in cache:
            try:
                cache = {name: _read_photo(images / name, json_path, k)}  # entries of one image are usually adjacent
            except DataFormatError as error:
                if on_skip is None:
                    raise
                on_skip(f"entry {k} ({name})", str(error))
                continue
        crop = cache[name].crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.BILINEAR)
        label = (xy - np.array([x0, y0]) + 0.5) / side
        label[~present] = np.nan
        crops.append(np.asarray(crop, dtype=np.uint8))
        labels.append(label)
        names.append(name)
        vis_flags.append(present.astype(np.int8).tolist())
    if not crops:
        raise DataFormatError(f"{json_path}: no usable person entries (all skipped or empty)")
    n = len(crops)
    return TaskData(
        images=np.stack(crops),
        labels=np.stack(labels).astype(np.float32),
        meta={"activity": ["unknown"] * n, "yaw": [float("nan")] * n, "person": [-1] * n,
              "image": names, "joints_vis": vis_flags},
    )
