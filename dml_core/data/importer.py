"""``python -m dml_core import``: a data set on disk becomes a task every command and page can use.

Formats:

* ``folder``: an image folder plus a CSV with a ``file`` column (paths relative to the folder)
  and one or more numeric label columns, which form the label vector (compared after
  standardising each column; see ``tasks.imported``). Other text columns are kept as image
  attributes (for colouring maps and filtering queries).
* ``mpii`` / ``lsun`` / ``coco``: the real benchmarks' public formats, read by the pose / layout
  / caption tasks' loaders, compared with those tasks' label distances.

The import decodes every image with ``dml_core.core.images`` (size and pixel limits), resizes it to
the tasks' square format, splits the usable images into train / gallery / query at random
(``--split``, ``--seed``; several people of one MPII photo stay in one split) and writes them
into the artifact store, each split atomically with its manifest, the descriptor last. The
source is only read. Every item left out is reported with its reason (one line each) and
counted; a data set with too few usable images is an error, never an empty task.
"""
from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from dml_core.core.images import ImageInputError, read_image_file, to_square_array
from dml_core.core.store import ArtifactStore, CorruptArtifact, UnsafePath, confined_path, dml_home
from dml_core.data.splits import SPLITS, load_split, save_split, split_key
from dml_core.data.tasks import DEFAULT_IMAGE_SIZE, DataFormatError, TaskData, get_task
from dml_core.data.tasks.imported import (
    DESCRIPTOR,
    DISTANCES,
    FORMAT_BASE,
    FORMATS,
    KIND,
    SOURCE,
    is_imported_folder,
    source_counts,
    validate_name,
)

DEFAULT_FRACTIONS = (0.7, 0.2, 0.1)
#: The fewest images per split a build can use: training finds 30 label neighbours per image,
#: and Compare shows up to 20 results per query.
MIN_SPLIT = {"train": 40, "gallery": 20, "query": 2}
#: A CSV larger than this is not a label file.
MAX_CSV_BYTES = 200 * 2**20
DISTANCE_WORDS = {
    "euclidean": "Euclidean distance of the standardised label vectors",
    "l1": "sum of absolute differences (L1) of the standardised label columns",
    "cosine": "1 − cosine similarity of the standardised label vectors",
}


class ImportInputError(ValueError):
    """The data set cannot be imported; the message is one line saying why."""


@dataclass
class Skip:
    """One item the import left out: where it is (CSV line, JSON entry, file) and why."""

    where: str
    reason: str

    def line(self) -> str:
        return f"skipped {self.where}: {' '.join(self.reason.split())}"


@dataclass
class Collected:
    """What a format's reader made of a data set, before splitting."""

    data: TaskData
    #: Items sharing a group go to the same split (the people of one MPII photo).
    groups: list
    skipped: list[Skip]
    #: Descriptor fields of this format: description, attributes, label columns …
    descriptor: dict = field(default_factory=dict)


@dataclass
class ImportReport:
    name: str
    format: str
    counts: dict[str, int]
    skipped: list[Skip]
    descriptor: dict

    def summary(self) -> str:
        counts = ", ".join(f"{split} {self.counts[split]}" for split in SPLITS)
        skipped = f"skipped {len(self.skipped)}" + (" (listed above)" if self.skipped else "")
        return (f"imported {self.name} ({self.format}): {sum(self.counts.values())} images ({counts}); {skipped}. "
                f"Next: python -m dml_core build --tasks {self.name}")


# ------------------------------------------------------------------------------- folder
def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line number, fields)]) of a label CSV; ImportInputError when unusable."""
    if not path.is_file():
        raise ImportInputError(f"{path}: no such CSV file")
    if path.stat().st_size > MAX_CSV_BYTES:
        raise ImportInputError(f"{path}: {path.stat().st_size / 2**20:.0f} MB is too large for a label CSV")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ImportInputError(f"{path}: not UTF-8 text (is it a CSV file?)") from None
    except OSError as exc:
        raise ImportInputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise ImportInputError(f"{path}: the CSV is empty")
        rows = [(reader.line_num, fields) for fields in reader if any(f.strip() for f in fields)]
    except csv.Error as exc:
        raise ImportInputError(f"{path}: not a readable CSV (line {reader.line_num}: {exc})") from None
    header = [name.strip() for name in header]
    if len(set(header)) != len(header):
        duplicated = sorted({name for name in header if header.count(name) > 1})
        raise ImportInputError(f"{path}: column(s) {', '.join(map(repr, duplicated))} appear more than once")
    return header, rows


def _label_columns(path: Path, header: list[str], rows, wanted: list[str] | None) -> list[str]:
    """The wanted columns, or every column (but ``file``) whose filled cells are mostly numbers."""
    if "file" not in header:
        raise ImportInputError(f"{path}: no 'file' column (columns: {', '.join(header) or 'none'})")
    if wanted:
        unknown = [c for c in wanted if c not in header or c == "file"]
        if unknown:
            raise ImportInputError(f"{path}: no label column(s) {', '.join(map(repr, unknown))} "
                                   f"(columns: {', '.join(header)})")
        return list(wanted)
    numeric = []
    for position, column in enumerate(header):
        if column == "file":
            continue
        filled = [fields[position].strip() for _, fields in rows if position < len(fields) and fields[position].strip()]
        numbers = sum(_number(value) is not None for value in filled)
        if numbers and 2 * numbers >= len(filled):  # a few blank or text cells are bad rows, not a text column
            numeric.append(column)
    if not numeric:
        raise ImportInputError(f"{path}: no numeric label column (columns: {', '.join(header)}); "
                               "a label is one or more columns of numbers")
    return numeric


def read_folder(images, labels, size: int = DEFAULT_IMAGE_SIZE, label_columns: list[str] | None = None,
                progress: bool = True, on_skip: Callable[[Skip], None] | None = None) -> Collected:
    """Read an image folder and its label CSV. A row is skipped (and reported) when its path
    leaves the folder (absolute, ``..``, a link out), repeats an earlier row's file, has a
    blank or non-numeric label, or names a missing or unreadable image."""
    from tqdm.auto import tqdm

    images_dir, csv_path = Path(images), Path(labels)
    if not images_dir.is_dir():
        raise ImportInputError(f"{images_dir}: no such image folder")
    header, rows = _read_csv(csv_path)
    columns = _label_columns(csv_path, header, rows, label_columns)
    position = {name: i for i, name in enumerate(header)}
    text_columns = [c for c in header if c != "file" and c not in columns]
    skipped: list[Skip] = []
    claimed: dict[Path, int] = {}
    pixels, values, meta = [], [], {"file": [], **{c: [] for c in columns}, **{c: [] for c in text_columns}}

    def skip(where: str, reason: str) -> None:
        skipped.append(Skip(where, reason))
        if on_skip:
            on_skip(skipped[-1])

    for line, fields in tqdm(rows, desc=f"import {images_dir.name}", unit="img", disable=not progress,
                             mininterval=0.5):
        if len(fields) != len(header):
            skip(f"line {line}", f"{len(fields)} fields, the header has {len(header)}")
            continue
        relative = fields[position["file"]].strip()
        where = f"line {line} ({relative})" if relative else f"line {line}"
        if not relative:
            skip(where, "no file name")
            continue
        try:
            path = confined_path(images_dir, relative)
        except UnsafePath:
            skip(where, "the path leads outside the image folder (absolute, '..' or a link out); refused")
            continue
        row_values, problem = [], None
        for column in columns:
            text = fields[position[column]].strip()
            value = _number(text)
            if value is None:
                problem = f"label {column!r} is blank" if not text else f"label {column!r} is {text[:40]!r}, not a number"
                break
            row_values.append(value)
        if problem:
            skip(where, problem)
            continue
        if path in claimed:
            skip(where, f"duplicate of line {claimed[path]} (same file)")
            continue
        try:
            pixels.append(to_square_array(read_image_file(path), size))
        except ImageInputError as exc:
            skip(where, f"unreadable image: {exc}")
            continue
        claimed[path] = line
        values.append(row_values)
        meta["file"].append(relative)
        for column, value in zip(columns, row_values):
            meta[column].append(value)
        for column in text_columns:
            meta[column].append(fields[position[column]].strip())
    if not pixels:
        raise ImportInputError(f"{csv_path}: no usable row ({len(skipped)} skipped, {len(rows)} in the file)")
    data = TaskData(np.stack(pixels), np.asarray(values, dtype=np.float32), meta)
    return Collected(data, list(range(len(data))), skipped, {
        "label_columns": columns, "attributes": [*columns, *text_columns],
        "source": {"images": str(images_dir.resolve()), "labels": str(csv_path.resolve())},
    })


# ------------------------------------------------------------------ real-data formats
def _loader_skips(on_skip) -> tuple[list[Skip], Callable[[str, str], None]]:
    skipped: list[Skip] = []

    def report(where: str, reason: str) -> None:
        skipped.append(Skip(where, reason))
        if on_skip:
            on_skip(skipped[-1])

    return skipped, report


def _keep_meta(data: TaskData, keys, extra: dict | None = None) -> TaskData:
    """The loader's data with only the meta that is known for real images (plus ``extra``)."""
    meta = {key: list(data.meta[key]) for key in keys if key in data.meta}
    return TaskData(data.images, data.labels, {**meta, **(extra or {})})


def torso_tilt(labels: np.ndarray) -> list[float]:
    """Degrees the pelvis → thorax line leans from upright (positive: towards image right)."""
    from dml_core.data.tasks.pose import JOINT_NAMES

    pelvis, thorax = JOINT_NAMES.index("pelvis"), JOINT_NAMES.index("thorax")
    dx = labels[:, thorax, 0] - labels[:, pelvis, 0]
    dy = labels[:, thorax, 1] - labels[:, pelvis, 1]
    return [round(float(v), 2) for v in np.degrees(np.arctan2(dx, -dy))]


def read_mpii(root, size: int = DEFAULT_IMAGE_SIZE, on_skip=None, **kwargs) -> Collected:
    skipped, report = _loader_skips(on_skip)
    data = get_task("pose").load_real(root, size, on_skip=report, **kwargs)
    data = _keep_meta(data, ("image",), {"torso_tilt": torso_tilt(data.labels)})
    return Collected(data, list(data.meta["image"]), skipped, {
        "attributes": ["torso_tilt"],
        "description": "MPII people; label = 16 joints in the person's crop; distance = mean per-joint error "
                       "after pelvis centring and torso scaling (the pose task's).",
    })


def read_lsun(root, size: int = DEFAULT_IMAGE_SIZE, on_skip=None, **kwargs) -> Collected:
    skipped, report = _loader_skips(on_skip)
    data = _keep_meta(get_task("layout").load_real(root, size, on_skip=report, **kwargs), ("name", "room", "room_type"))
    return Collected(data, list(data.meta["name"]), skipped, {
        "attributes": ["room_type", "room"],
        "description": "LSUN rooms; label = layout segmentation (5 surfaces); distance = fraction of cells with "
                       "another surface (LSUN pixel error).",
    })


def _coco_captions_file(root: Path) -> Path:
    if root.is_file():
        return root
    found = sorted({*root.glob("annotations/captions_*.json"), *root.glob("captions_*.json")})
    if not found:
        raise ImportInputError(f"{root}: no COCO captions file (looked for annotations/captions_*.json and captions_*.json)")
    if len(found) > 1:
        raise ImportInputError(f"{root}: several captions files ({', '.join(p.name for p in found)}); "
                               "pass one of them as --root")
    return found[0]


def read_coco(root, size: int = DEFAULT_IMAGE_SIZE, on_skip=None, **kwargs) -> Collected:
    from dml_core.core.text import text_backend

    skipped, report = _loader_skips(on_skip)
    path = _coco_captions_file(Path(root))
    task = get_task("caption")
    data = task.load_real(path, size, on_skip=report, **kwargs)
    data = _keep_meta(data, ("captions", "objects", "category", "main_object", "n_objects", "image_id", "file_name"))
    return Collected(data, list(data.meta["image_id"]), skipped, {
        "attributes": ["category", "main_object", "n_objects"], "text_backend": text_backend(),
        "description": "COCO images; label = their captions' mean sentence embedding; distance = 1 − cosine "
                       "similarity (the caption task's).",
    })


READERS = {"mpii": read_mpii, "lsun": read_lsun, "coco": read_coco}


def read_dataset(fmt: str, path, size: int = DEFAULT_IMAGE_SIZE, on_skip=None, progress: bool = False,
                 **kwargs) -> Collected:
    """One format's reader: ``folder`` takes the image folder as ``path`` and ``labels=CSV``."""
    if fmt == "folder":
        labels = kwargs.pop("labels", None)
        if labels is None:
            raise ImportInputError("a folder data set needs its label CSV (labels=...)")
        return read_folder(path, labels, size, progress=progress, on_skip=on_skip, **kwargs)
    if fmt not in READERS:
        raise ImportInputError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if not Path(path).exists():
        raise ImportInputError(f"{path}: no such file or folder")
    try:
        return READERS[fmt](path, size, on_skip=on_skip, **kwargs)
    except DataFormatError as exc:
        raise ImportInputError(str(exc)) from None


# ------------------------------------------------------------------------------ splits
def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.7,0.2,0.1"`` → train, gallery, query fractions (positive, summing to 1)."""
    parts = [p.strip() for p in str(text).split(",")]
    values = [_number(p) for p in parts]
    if len(values) != 3 or any(v is None or v <= 0 for v in values) or abs(sum(values) - 1) > 1e-3:
        raise ImportInputError(f"--split {text!r}: give three positive fractions train,gallery,query that sum to 1, "
                               "e.g. 0.7,0.2,0.1")
    return tuple(values)


def assign_splits(groups: list, fractions, seed: int) -> dict[str, np.ndarray]:
    """Indices per split, in random order. Groups are shuffled and dealt out whole: query first,
    then gallery, the rest to train, each group going where its first item falls."""
    unique = list(dict.fromkeys(groups))
    members: dict = {g: [] for g in unique}
    for i, g in enumerate(groups):
        members[g].append(i)
    n = len(groups)
    n_query = round(fractions[2] * n)
    n_gallery = round(fractions[1] * n)
    out: dict[str, list[int]] = {split: [] for split in SPLITS}
    position = 0
    for g in (unique[i] for i in np.random.default_rng(seed).permutation(len(unique))):
        split = "query" if position < n_query else "gallery" if position < n_query + n_gallery else "train"
        out[split] += members[g]
        position += len(members[g])
    return {split: np.asarray(indices, dtype=np.int64) for split, indices in out.items()}


def _check_sizes(splits: dict[str, np.ndarray], fractions, total: int) -> None:
    for split in SPLITS:
        if len(splits[split]) < MIN_SPLIT[split]:
            raise ImportInputError(
                f"too few usable images: {total} split {','.join(f'{f:g}' for f in fractions)} gives {split} "
                f"{len(splits[split])}, and a build needs at least {MIN_SPLIT[split]} (train {MIN_SPLIT['train']}, "
                f"gallery {MIN_SPLIT['gallery']}, query {MIN_SPLIT['query']}); add images or change --split")


# ------------------------------------------------------------------------------ import
def _check_destination(store: ArtifactStore, name: str, replace: bool) -> bool:
    """Whether an earlier import of ``name`` is to be replaced; refuses to overwrite anything
    else, and an earlier import without ``replace``."""
    folder = store.path(name)
    if not folder.exists():
        return False
    children = {child.name for child in folder.iterdir() if ".tmp-" not in child.name}
    if not (is_imported_folder(store.root, name) or children <= {SOURCE}):  # an import, or one killed early
        raise ImportInputError(f"{folder} exists and is not an imported task; choose another name")
    if not replace:
        raise ImportInputError(f"a task named {name!r} is already imported in {store.root}; pass --replace to "
                               "import it again (what was built from it is removed)")
    return True


def _remove_import(store: ArtifactStore, name: str) -> None:
    # The descriptor goes first: a replace killed halfway leaves nothing that looks like a task.
    store.remove(name, DESCRIPTOR)
    shutil.rmtree(store.path(name), ignore_errors=True)


def _descriptor(name: str, fmt: str, collected: Collected, splits, distance: str, fractions, seed: int,
                size: int, title: str | None) -> dict:
    descriptor = {
        "kind": KIND, "format": fmt, "title": " ".join((title or name).split())[:60] or name,
        "attributes": collected.descriptor["attributes"], "counts": {s: int(len(splits[s])) for s in SPLITS},
        "skipped": len(collected.skipped), "split": list(fractions), "seed": seed, "image_size": size,
        "import_id": uuid.uuid4().hex, **{k: v for k, v in collected.descriptor.items() if k != "attributes"},
    }
    if fmt == "folder":
        train = collected.data.labels[splits["train"]].astype(np.float64)
        scale = train.std(axis=0)
        if not (scale > 0).any():
            raise ImportInputError("every label column has the same value in every training image; "
                                   "there is nothing to learn")
        columns = collected.descriptor["label_columns"]
        descriptor.update(
            distance=distance, label_mean=train.mean(axis=0).tolist(), label_scale=np.where(scale > 0, scale, 1.0).tolist(),
            description=f"Your images; label = {', '.join(columns)}, each column standardised; "
                        f"distance = {DISTANCE_WORDS[distance]}.",
        )
    else:
        descriptor["distance"] = f"the {FORMAT_BASE[fmt]} task's"
    return descriptor


def import_dataset(name: str, fmt: str, *, images=None, labels=None, root=None, distance: str = "euclidean",
                   fractions=DEFAULT_FRACTIONS, seed: int = 0, label_columns: list[str] | None = None,
                   replace: bool = False, store: ArtifactStore | None = None, size: int = DEFAULT_IMAGE_SIZE,
                   title: str | None = None, progress: bool = True,
                   on_skip: Callable[[Skip], None] | None = None) -> ImportReport:
    """Import a data set as task ``name`` (see the module docstring); ImportInputError (one
    line) for anything that makes it unusable. ``title``: what the app's task picker shows
    (default: the name). ``on_skip`` hears of each left-out item as it is found."""
    try:
        validate_name(name)
    except ValueError as exc:
        raise ImportInputError(str(exc)) from None
    if fmt not in FORMATS:
        raise ImportInputError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if distance not in DISTANCES:
        raise ImportInputError(f"unknown distance {distance!r}; choose from {', '.join(DISTANCES)}")
    if fmt == "folder":
        if images is None or labels is None or root is not None:
            raise ImportInputError("--format folder takes --images DIR and --labels FILE.csv (not --root)")
        if distance == "cosine" and label_columns is not None and len(label_columns) == 1:
            raise ImportInputError("cosine distance needs at least two label columns (one column has only a sign)")
    else:
        if root is None or images is not None or labels is not None or label_columns:
            raise ImportInputError(f"--format {fmt} takes --root (the data set's folder), not --images / --labels")
        if distance != "euclidean":
            raise ImportInputError(f"--distance applies to folder imports; {fmt} uses the {FORMAT_BASE[fmt]} task's")
    fractions = tuple(fractions)
    store = store or ArtifactStore()
    _check_destination(store, name, replace)  # before reading anything: a refused name costs nothing

    if fmt == "folder":
        collected = read_folder(images, labels, size, label_columns, progress=progress, on_skip=on_skip)
        if distance == "cosine" and len(collected.descriptor["label_columns"]) == 1:
            raise ImportInputError("cosine distance needs at least two label columns (one column has only a sign)")
    else:
        collected = read_dataset(fmt, root, size, on_skip=on_skip)
    splits = assign_splits(collected.groups, fractions, seed)
    _check_sizes(splits, fractions, len(collected.data))
    descriptor = _descriptor(name, fmt, collected, splits, distance, fractions, seed, size, title)

    if _check_destination(store, name, replace):
        _remove_import(store, name)
    for split in SPLITS:
        save_split(store, name, split, collected.data.subset(splits[split]), kind=SOURCE,
                   meta={"import_id": descriptor["import_id"], "n": int(len(splits[split])), "size": size})
    with store.writer(name, DESCRIPTOR, meta=descriptor) as tmp:
        (tmp / "skipped.json").write_text(json.dumps([{"where": s.where, "reason": s.reason} for s in collected.skipped]))
    return ImportReport(name, fmt, descriptor["counts"], collected.skipped, descriptor)


def print_skip(skip: Skip) -> None:
    """Report a skipped item on stdout without breaking the progress bar on stderr."""
    from tqdm.auto import tqdm

    tqdm.write(skip.line(), file=sys.stdout)


def build_imported_data(store: ArtifactStore, profile, tasks) -> dict:
    """The data stage for imported tasks: each split is the first ``min(profile size, stored)``
    images of the import's split (an import splits in random order, so any prefix is a random
    sample). Returns seconds and images/s per task that needed a copy."""
    timings = {}
    for name in tasks:
        if store.root != dml_home():  # the later stages look the task up in DML_HOME
            raise ValueError(f"imported task {name}: run the build with DML_HOME={store.root}")
        from dml_core.data.tasks import get_task

        task = get_task(name, store.root)
        if task.descriptor.get("image_size") != profile.image_size:
            raise ValueError(f"imported task {name} stores {task.descriptor.get('image_size')} px images; "
                             f"profile {profile.name} needs {profile.image_size} px: import it again")
        start, copied = time.perf_counter(), 0
        for split in SPLITS:
            n = min(profile.split_size(name, split), source_counts(task)[split])
            meta = {"profile": profile.name, "n": n, "size": profile.image_size, "import_id": task.descriptor["import_id"]}
            key = split_key(name, split)
            if store.is_valid(*key) and store.manifest(*key)["meta"] == meta:
                continue
            if store.manifest(*split_key(name, split, SOURCE))["meta"].get("import_id") != meta["import_id"]:
                raise CorruptArtifact(f"artifact {name}/{SOURCE}/{split} belongs to another import of {name}; "
                                      "import it again with --replace")
            source = load_split(store, name, split, kind=SOURCE)
            save_split(store, name, split, source.subset(np.arange(n)), meta=meta)
            copied += n
        if copied:
            seconds = time.perf_counter() - start
            timings[name] = {"seconds": round(seconds, 2), "images_per_s": round(copied / max(seconds, 1e-9), 1)}
    return timings
