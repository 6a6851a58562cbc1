"""Room layout task: ray-cast box rooms labelled with LSUN-style layout segmentation maps.

Label
    A uint8 (L, L) map, L = ``LABEL_SIZE`` = 32, one surface class per cell, ray-cast at the
    centres of an L x L grid over the image (exact, not downsampled from the image). Classes
    follow LSUN's five layout surfaces; the value is LSUN's 1-based semantic label minus one:

        0 front wall (the far wall, the one the camera faces)   1 left wall   2 right wall
        3 floor                                                  4 ceiling

    Furniture, windows, doors and pictures never change the label (LSUN labels the room's
    surfaces behind furniture, and wall openings are part of the wall).

Label distance (LSUN pixel error)
    ``d(a, b) = (1 / L^2) * sum_p [a_p != b_p] = 1 - (1 / L^2) * sum_p sum_k A_pk B_pk``
    with A, B the one-hot encodings, computed for all pairs as one float32 matrix product.
    It is symmetric, 0 on the diagonal and in [0, 1]. The official LSUN toolkit first matches
    the two maps' labels one-to-one (Hungarian) to maximise the agreement;
    ``label_distance(a, b, matched=True)`` gives that version (exact over all 120 matchings of
    five classes, roughly 10x slower). Our labels are semantic, so the plain form is the default.

Room type (``meta["room_type"]``)
    LSUN's 11 layout types, read from which surfaces appear in the label map:

        three walls: 0 with floor and ceiling, 1 floor only, 2 ceiling only, 7 neither
        two walls (one vertical corner): 5 floor and ceiling, 4 floor, 3 ceiling, 10 neither
        one wall: 6 floor and ceiling, 8 ceiling only, 9 floor only
        11: none of these (a single wall alone; the generator never produces it)

    Convention difference: in a two-wall corner view we keep calling the far wall "front"
    (front + left or front + right), consistent in 3D; LSUN's semantic relabelling calls the
    two walls of types 3, 4, 5, 10 "left" and "right". Real data keeps its own labels.

Real data (``load_real``)
    The LSUN room layout challenge format: ``images/<name>.jpg`` and ``layout_seg/<name>.mat``
    (a matrix ``layout`` the size of the image), optionally the index files
    ``training.mat`` / ``validation.mat`` / ``testing.mat`` (struct array with fields image,
    scene, type, point, resolution). Caution, verified against the challenge's toolkit
    (getSegmentation.m): the original ``layout_seg`` values are *region ids* in connected-
    component order, not semantic classes; the widely used relabelled release stores semantic
    values 1 frontal, 2 left, 3 right, 4 floor, 5 ceiling. See ``load_real`` for both.
"""
from __future__ import annotations

import math
from itertools import permutations
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dml_core.data.tasks import _layout_render as R
from dml_core.data.tasks._layout_render import (
    CEILING,
    CLASS_NAMES,
    FLOOR,
    FRONT,
    LEFT,
    NUM_CLASSES,
    RIGHT,
    RoomAppearance,
    RoomGeometry,
)
from dml_core.data.tasks.base import DEFAULT_IMAGE_SIZE, DataFormatError, Task, TaskData

LABEL_SIZE = 32
NUM_ROOM_TYPES = 11  # LSUN types 0..10; 11 marks "none of them"
GEOMETRY_KEYS = ("room_width", "room_depth", "room_height", "camera_x", "camera_y", "camera_z", "yaw", "pitch", "fov")
CLASS_COLORS = np.array([(80, 140, 255), (255, 90, 90), (90, 220, 120), (240, 200, 60), (200, 120, 255)], np.uint8)

__all__ = [
    "CEILING", "CLASS_NAMES", "FLOOR", "FRONT", "LABEL_SIZE", "LEFT", "NUM_CLASSES", "RIGHT",
    "LayoutTask", "RoomAppearance", "RoomGeometry", "TASK", "room_type",
]


def room_type(label: np.ndarray) -> int:
    """LSUN layout type (0-10, 11 = none) from the set of surfaces present in a label map."""
    present = np.bincount(np.asarray(label).reshape(-1), minlength=NUM_CLASSES)[:NUM_CLASSES] > 0
    walls = int(present[FRONT]) + int(present[LEFT]) + int(present[RIGHT])
    floor, ceiling = bool(present[FLOOR]), bool(present[CEILING])
    table = {
        3: {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 7},
        2: {(True, True): 5, (True, False): 4, (False, True): 3, (False, False): 10},
        1: {(True, True): 6, (True, False): 9, (False, True): 8, (False, False): 11},
    }
    return table[walls][(floor, ceiling)] if walls else 11


def _geometry_from_meta(meta: dict) -> RoomGeometry | None:
    try:
        values = [float(meta[k]) for k in GEOMETRY_KEYS]
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    w, d, h, cx, cy, cz, yaw, pitch, fov = values
    return RoomGeometry(w, d, h, cx, cy, cz, yaw, pitch, fov)


def _cell_centres(n_src: int, n_dst: int) -> np.ndarray:
    """Indices of the source pixels nearest to the centres of n_dst equal cells."""
    return np.minimum(((np.arange(n_dst) + 0.5) * n_src / n_dst).astype(np.int64), n_src - 1)


class LayoutTask(Task):
    """Box rooms ray-cast from varied cameras; label = LSUN layout segmentation map."""

    name = "layout"
    title = "Room layout"
    description = "Ray-cast rooms; label = surface segmentation; distance = fraction of pixels with another surface."
    attributes = ("room_type", "room", "view", "yaw", "pitch", "fov")
    categorical = ("room_type",)
    label_size = LABEL_SIZE

    # ---------------------------------------------------------------- generation
    @staticmethod
    def sample(seed: int, index: int) -> tuple[RoomGeometry, RoomAppearance, str]:
        """Geometry, appearance and view kind of image ``index`` of a split with ``seed``.

        Each image has its own SeedSequence((seed, index)); geometry and appearance use two
        independent children of it, so either can be swapped without touching the other.
        """
        geo_seq, look_seq = np.random.SeedSequence([int(seed), int(index)]).spawn(2)
        geometry, view = R.sample_geometry(np.random.default_rng(geo_seq), LABEL_SIZE)
        appearance = R.sample_appearance(np.random.default_rng(look_seq))
        return geometry, appearance, view

    @staticmethod
    def render(geometry: RoomGeometry, appearance: RoomAppearance, size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
        """uint8 (size, size, 3) image of the room (furniture included)."""
        return R.render(geometry, appearance, size)

    @staticmethod
    def layout(geometry: RoomGeometry, label_size: int = LABEL_SIZE) -> np.ndarray:
        """uint8 (label_size, label_size) layout map, ray-cast at the grid cell centres."""
        return R.layout_map(geometry, label_size)

    def generate(self, n: int, seed: int, size: int = DEFAULT_IMAGE_SIZE, label_size: int = LABEL_SIZE) -> TaskData:
        """``n`` rooms: images uint8 (n, size, size, 3), labels uint8 (n, L, L).

        Deterministic for (n, seed, size); image i depends only on (seed, i), so
        ``generate(n, seed)[:k] == generate(k, seed)``. Meta: room_type (LSUN 0-10), room
        (bedroom, kitchen, ...), view (wide, corner, down, up, narrow), yaw / pitch / fov in
        degrees, and the room box and camera position in metres.
        """
        if n < 0 or size < 8:
            raise ValueError(f"need n >= 0 and size >= 8, got n={n}, size={size}")
        images = np.empty((n, size, size, 3), np.uint8)
        labels = np.empty((n, label_size, label_size), np.uint8)
        meta: dict[str, list] = {key: [] for key in ("room_type", "room", "view", *GEOMETRY_KEYS, "floor", "walls")}
        for i in range(n):
            geometry, appearance, view = self.sample(seed, i)
            images[i] = R.render(geometry, appearance, size)
            labels[i] = R.layout_map(geometry, label_size)
            meta["room_type"].append(room_type(labels[i]))
            meta["room"].append(appearance.room)
            meta["view"].append(view)
            g = geometry
            for key, value in zip(GEOMETRY_KEYS, (g.width, g.depth, g.height, g.camera_x, g.camera_y, g.camera_z, g.yaw, g.pitch, g.fov)):
                meta[key].append(round(float(value), 4))
            meta["floor"].append(appearance.floor.kind)
            meta["walls"].append(appearance.walls.kind)
        return TaskData(images=images, labels=labels, meta=meta)

    # ---------------------------------------------------------------- label distance
    def label_distance(self, labels_a: np.ndarray, labels_b: np.ndarray, matched: bool = False, chunk: int = 2048) -> np.ndarray:
        """LSUN pixel error between every pair of layout maps: float32 (len(a), len(b)).

        Plain (default): ``d = 1 - (1/P) sum_p sum_k A_pk B_pk`` = fraction of the P label
        cells whose class differs, with A, B one-hot (float32, exact integer counts, so the
        matrix is exactly symmetric with a zero diagonal).
        ``matched=True``: the LSUN toolkit's version, ``d = 1 - max_pi (1/P) sum_k C[k, pi(k)]``
        with C the 5x5 confusion counts and pi over all one-to-one class matchings.
        """
        a, b = self._flat_labels(labels_a), self._flat_labels(labels_b)
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"label maps differ in size: {a.shape[1]} vs {b.shape[1]} cells")
        p = a.shape[1]
        out = np.empty((len(a), len(b)), np.float32)
        if len(a) == 0 or len(b) == 0:
            return out
        if not matched:
            hot_b = self._one_hot(b).reshape(len(b), -1)
            for start in range(0, len(a), chunk):
                hot_a = self._one_hot(a[start:start + chunk]).reshape(-1, p * NUM_CLASSES)
                out[start:start + chunk] = 1.0 - (hot_a @ hot_b.T) / np.float32(p)
            return out
        perms = np.array(list(permutations(range(NUM_CLASSES))))
        match = np.zeros((NUM_CLASSES * NUM_CLASSES, len(perms)), np.float32)
        for j, perm in enumerate(perms):
            match[np.arange(NUM_CLASSES) * NUM_CLASSES + perm, j] = 1.0
        hot_b = self._one_hot(b).transpose(1, 0, 2).reshape(p, -1)  # (P, M*5)
        step = max(1, chunk // 16)
        for start in range(0, len(a), step):
            hot_a = self._one_hot(a[start:start + step])  # (n, P, 5)
            n = len(hot_a)
            conf = (hot_a.transpose(0, 2, 1).reshape(-1, p) @ hot_b).reshape(n, NUM_CLASSES, len(b), NUM_CLASSES)
            conf = conf.transpose(0, 2, 1, 3).reshape(n * len(b), -1)  # one 2-D GEMM, not n small ones
            best = (conf @ match).max(axis=1).reshape(n, len(b))
            out[start:start + step] = 1.0 - best / np.float32(p)
        return out

    @staticmethod
    def _flat_labels(labels: np.ndarray) -> np.ndarray:
        labels = np.asarray(labels)
        if labels.ndim == 2:
            labels = labels[None]
        if labels.ndim != 3 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"layout labels must be integer (N, L, L) maps, got {labels.dtype} {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            raise ValueError(f"layout labels must be classes 0..{NUM_CLASSES - 1}, got {labels.min()}..{labels.max()}")
        return labels.reshape(len(labels), -1)

    @staticmethod
    def _one_hot(flat: np.ndarray) -> np.ndarray:
        return np.eye(NUM_CLASSES, dtype=np.float32)[flat]

    # ---------------------------------------------------------------- real data
    def load_real(
        self,
        path,
        size: int = DEFAULT_IMAGE_SIZE,
        split: str | None = None,
        label_format: str = "auto",
        label_size: int = LABEL_SIZE,
        on_skip=None,
    ) -> TaskData:
        """Read an LSUN room layout folder.

        path: a folder with ``images/<name>.jpg`` and ``layout_seg/<name>.mat`` (matrix
            ``layout``, the image's height x width); ``layout_seg_images/<name>.png`` with
            values 1-5 is accepted instead of layout_seg. Index files ``training.mat``,
            ``validation.mat``, ``testing.mat`` are optional.
        split: None reads every layout file (sorted by name); "training" / "validation"
            (or "train" / "val") reads the names of that index file, in its order.
        label_format: "semantic" = values 1 frontal, 2 left, 3 right, 4 floor, 5 ceiling (the
            relabelled release); "regions" = the original challenge's region ids, mapped to
            surfaces by sampling each surface at a point inside it given the index's layout
            type and corner points; "auto" = "regions" when the index gives the image's type
            and corners, else "semantic".
        Images are resized (squashed, no crop, so the whole layout stays in view) to
        size x size; labels are sampled nearest-neighbour at the centres of an L x L grid.
        meta: name, room (the index's scene or "unknown"), room_type (the index's type, else
        read from the label), yaw / pitch / fov = NaN (unknown for real photos).
        Any missing or malformed file raises DataFormatError naming it; with ``on_skip(name,
        reason)`` an image whose own files (photo, layout map) are missing or malformed is
        reported through it and left out instead. Photos are decoded with ``dml_core.core.images``'
        limits, without EXIF rotation (the layout map refers to the stored pixels).
        """
        from scipy import io as sio  # noqa: F401  (fail early and clearly if scipy is missing)

        if label_format not in ("auto", "semantic", "regions"):
            raise ValueError(f"label_format must be 'auto', 'semantic' or 'regions', got {label_format!r}")
        root = Path(path)
        if not root.is_dir():
            raise DataFormatError(f"{root}: not a folder (expected an LSUN room layout folder with images/ and layout_seg/)")
        images_dir = root / "images"
        if not images_dir.is_dir():
            raise DataFormatError(f"{images_dir}: missing images folder")
        seg_dir, seg_ext = root / "layout_seg", ".mat"
        if not seg_dir.is_dir():
            seg_dir, seg_ext = root / "layout_seg_images", ".png"
            if not seg_dir.is_dir():
                raise DataFormatError(f"{root / 'layout_seg'}: missing layout_seg folder (LSUN layout .mat files)")

        index: dict[str, dict] = {}
        if split is not None:
            split_name = {"train": "training", "val": "validation", "test": "testing"}.get(split, split)
            index_file = root / f"{split_name}.mat"
            if not index_file.is_file():
                raise DataFormatError(f"{index_file}: missing index file for split {split!r}")
            entries = _read_index(index_file)
            names = [e["name"] for e in entries]
            index = {e["name"]: e for e in entries}
        else:
            for candidate in ("training.mat", "validation.mat", "testing.mat"):
                if (root / candidate).is_file():
                    index.update({e["name"]: e for e in _read_index(root / candidate)})
            names = sorted(p.stem for p in seg_dir.glob(f"*{seg_ext}"))
        if not names:
            raise DataFormatError(f"{seg_dir}: no *{seg_ext} layout files")

        images, labels = [], []
        meta: dict[str, list] = {k: [] for k in ("name", "room", "room_type", "yaw", "pitch", "fov")}
        for name in names:
            try:
                image, label, entry = self._read_real_item(name, images_dir, seg_dir, seg_ext, index, label_format,
                                                           label_size, size)
            except DataFormatError as error:
                if on_skip is None:
                    raise
                on_skip(name, str(error))
                continue
            images.append(image)
            labels.append(label)
            meta["name"].append(name)
            meta["room"].append(str(entry["scene"]) if entry and entry.get("scene") else "unknown")
            meta["room_type"].append(int(entry["type"]) if entry and entry.get("type") is not None else room_type(label))
            for key in ("yaw", "pitch", "fov"):
                meta[key].append(float("nan"))
        if not images:
            raise DataFormatError(f"{root}: no usable image (every one was skipped)")
        return TaskData(images=np.stack(images), labels=np.stack(labels), meta=meta)

    @staticmethod
    def _read_real_item(name, images_dir, seg_dir, seg_ext, index, label_format, label_size, size):
        """(image, label map, index entry or None) of one LSUN image; DataFormatError naming the file."""
        from dml_core.core.images import ImageInputError, read_image_file

        image_file = next((images_dir / f"{name}{ext}" for ext in (".jpg", ".jpeg", ".png") if (images_dir / f"{name}{ext}").is_file()), None)
        if image_file is None:
            raise DataFormatError(f"{images_dir / (name + '.jpg')}: missing image for layout {name!r}")
        try:
            photo = read_image_file(image_file, exif_transpose=False)
        except ImageInputError as exc:
            raise DataFormatError(f"{image_file}: unreadable image ({exc})") from None
        seg_file = seg_dir / f"{name}{seg_ext}"
        seg = _read_layout_mat(seg_file) if seg_ext == ".mat" else _read_layout_png(seg_file)
        if seg.shape != (photo.height, photo.width):
            raise DataFormatError(f"{seg_file}: layout is {seg.shape[0]}x{seg.shape[1]} but image {image_file.name} is {photo.height}x{photo.width}")
        entry = index.get(name)
        fmt = label_format
        if fmt == "auto":
            fmt = "regions" if entry is not None and entry.get("points") is not None and entry.get("type") is not None else "semantic"
        if fmt == "regions":
            if entry is None or entry.get("points") is None or entry.get("type") is None:
                raise DataFormatError(f"{seg_file}: label_format='regions' needs the image's type and corner points from an index .mat")
            semantic = _regions_to_semantic(seg, entry["type"], entry["points"], seg_file)
        else:
            values = np.unique(seg)
            if values.min() < 1 or values.max() > NUM_CLASSES:
                raise DataFormatError(f"{seg_file}: layout values {values.tolist()[:8]} outside 1..5 (original region ids need label_format='regions' and an index .mat)")
            semantic = seg.astype(np.int64) - 1
        rows, cols = _cell_centres(seg.shape[0], label_size), _cell_centres(seg.shape[1], label_size)
        label = semantic[np.ix_(rows, cols)].astype(np.uint8)
        image = np.asarray(photo.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)
        return image, label, entry

    # ---------------------------------------------------------------- drawing
    def draw_label(self, image: Image.Image, label: np.ndarray, meta: dict, width: int = 256, tint: float = 0.12) -> Image.Image:
        """The room at ``width`` × ``width`` px with its layout edges drawn over it.

        Edges are the boundaries between surface classes. When ``meta`` carries the room and
        camera (generated data) the layout is ray-cast again at display resolution, so edges
        are sharp lines; otherwise the L x L map is upsampled smoothly (bilinear one-hot, then
        argmax). ``tint`` colours each surface faintly (0 disables it).
        """
        label = np.asarray(label)
        fine = None
        geometry = _geometry_from_meta(meta or {})
        if geometry is not None:
            fine = R.layout_map(geometry, width)
            check = fine[np.ix_(_cell_centres(width, label.shape[0]), _cell_centres(width, label.shape[1]))]
            if np.mean(check != label) > 0.05:  # meta does not describe this label: trust the label
                fine = None
        if fine is None:
            fine = _smooth_upsample(label, width)
        base = np.asarray(image.convert("RGB").resize((width, width), Image.Resampling.BICUBIC), np.float32)
        if tint > 0:
            base = base * (1 - tint) + CLASS_COLORS[fine].astype(np.float32) * tint
        edge = np.zeros(fine.shape, bool)
        edge[:, 1:] |= fine[:, 1:] != fine[:, :-1]
        edge[1:, :] |= fine[1:, :] != fine[:-1, :]
        line = _dilate(edge, 1)
        halo = _dilate(edge, 2)
        base[halo] *= 0.35
        base[line] = (255, 236, 60)
        out = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
        kind = (meta or {}).get("room_type")
        if kind is not None:
            ImageDraw.Draw(out).text((4, 2), f"type {kind}", fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
        return out


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(radius):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def _smooth_upsample(label: np.ndarray, size: int) -> np.ndarray:
    """Upsample a class map without staircases: nearest-neighbour upsampling of each class's
    indicator, a box blur one label cell wide (which straightens the steps), then argmax."""
    h, w = label.shape
    rows, cols = (np.arange(size) * h // size), (np.arange(size) * w // size)
    hot = np.eye(NUM_CLASSES, dtype=np.float32)[label[np.ix_(rows, cols)]]
    for axis, cell in ((0, size / h), (1, size / w)):
        radius = max(int(cell // 2), 1)
        pad = [(0, 0)] * 3
        pad[axis] = (radius + 1, radius)
        csum = np.cumsum(np.pad(hot, pad, mode="edge"), axis=axis)
        hot = np.take(csum, np.arange(2 * radius + 1, 2 * radius + 1 + size), axis=axis) - np.take(csum, np.arange(size), axis=axis)
    return hot.argmax(axis=2).astype(np.uint8)


# ---------------------------------------------------------------- LSUN file readers
def _loadmat(path: Path) -> dict:
    from scipy import io as sio

    if not path.is_file():
        raise DataFormatError(f"{path}: missing file")
    try:
        return sio.loadmat(str(path))
    except Exception as exc:  # scipy raises ValueError / TypeError / MatReadError for junk
        raise DataFormatError(f"{path}: not a readable MATLAB .mat file ({type(exc).__name__})") from None


def _read_layout_mat(path: Path) -> np.ndarray:
    data = _loadmat(path)
    arrays = {k: v for k, v in data.items() if not k.startswith("__")}
    seg = arrays.get("layout")
    if seg is None:
        numeric = [v for v in arrays.values() if isinstance(v, np.ndarray) and v.ndim == 2 and np.issubdtype(v.dtype, np.number)]
        if len(numeric) != 1:
            raise DataFormatError(f"{path}: no 'layout' matrix (found {sorted(arrays) or 'nothing'})")
        seg = numeric[0]
    if not isinstance(seg, np.ndarray) or seg.ndim != 2 or seg.size == 0 or not np.issubdtype(seg.dtype, np.number):
        raise DataFormatError(f"{path}: 'layout' must be a non-empty 2-D numeric matrix, got {getattr(seg, 'shape', type(seg))}")
    if not np.all(np.isfinite(seg)) or np.any(seg != np.round(seg)):
        raise DataFormatError(f"{path}: 'layout' holds non-integer values")
    return seg.astype(np.int64)


def _read_layout_png(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataFormatError(f"{path}: missing file")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"), np.int64)
    except Exception as exc:
        raise DataFormatError(f"{path}: unreadable layout image ({type(exc).__name__})") from None


def _read_index(path: Path) -> list[dict]:
    """Entries of an LSUN index .mat: [{name, scene, type, points}], in file order."""
    data = _loadmat(path)
    arrays = {k: v for k, v in data.items() if not k.startswith("__")}
    table = arrays.get(path.stem)
    if table is None and len(arrays) == 1:
        table = next(iter(arrays.values()))
    if not isinstance(table, np.ndarray) or table.dtype.names is None:
        raise DataFormatError(f"{path}: expected a struct array named {path.stem!r} (fields image, scene, type, point, resolution)")
    fields = table.dtype.names

    def field_value(record, name: str, position: int):
        key = name if name in fields else (fields[position] if position < len(fields) else None)
        return None if key is None else record[key]

    entries = []
    for record in table.reshape(-1):
        try:
            name = _mat_str(field_value(record, "image", 0))
            scene = _mat_str(field_value(record, "scene", 1))
            kind = field_value(record, "type", 2)
            kind = None if kind is None or np.size(kind) == 0 else int(np.asarray(kind).reshape(-1)[0])
            points = field_value(record, "point", 3)
            points = None if points is None or np.size(points) == 0 else np.asarray(points, np.float64).reshape(-1, 2)
        except (TypeError, ValueError, IndexError) as exc:
            raise DataFormatError(f"{path}: malformed index record ({type(exc).__name__}: {exc})") from None
        if not name:
            raise DataFormatError(f"{path}: index record without an image name")
        entries.append({"name": name, "scene": scene, "type": kind, "points": points})
    return entries


def _mat_str(value) -> str:
    if value is None:
        return ""
    arr = np.asarray(value).reshape(-1)
    return str(arr[0]) if arr.size else ""


# Where each surface of an LSUN layout type lies, as the corner points (1-based, in the
# index's point order) whose centroid falls inside it, plus an offset direction for the types
# whose surfaces are separated by a single line (the centroid then lies on the line).
# Derived from the region table of the challenge toolkit (RoomLayoutTypes.m); corner views
# (types 3, 4, 5, 10) call their two walls left and right, as the semantic relabelling does.
_TYPE_REGIONS = {
    0: [(LEFT, (1, 2, 3, 4), (0, 0)), (RIGHT, (5, 6, 7, 8), (0, 0)), (FRONT, (1, 3, 5, 7), (0, 0)), (FLOOR, (3, 4, 5, 6), (0, 0)), (CEILING, (1, 2, 7, 8), (0, 0))],
    1: [(LEFT, (1, 2, 3), (0, 0)), (RIGHT, (4, 5, 6), (0, 0)), (FRONT, (1, 2, 4, 5), (0, 0)), (FLOOR, (1, 3, 4, 6), (0, 0))],
    2: [(LEFT, (1, 2, 3), (0, 0)), (RIGHT, (4, 5, 6), (0, 0)), (FRONT, (1, 3, 4, 6), (0, 0)), (CEILING, (1, 2, 4, 5), (0, 0))],
    3: [(LEFT, (1, 2, 3), (0, 0)), (RIGHT, (1, 3, 4), (0, 0)), (CEILING, (1, 2, 4), (0, 0))],
    4: [(LEFT, (1, 2, 3), (0, 0)), (RIGHT, (1, 3, 4), (0, 0)), (FLOOR, (1, 2, 4), (0, 0))],
    5: [(LEFT, (1, 2, 4, 5), (0, 0)), (RIGHT, (1, 3, 4, 6), (0, 0)), (FLOOR, (4, 5, 6), (0, 0)), (CEILING, (1, 2, 3), (0, 0))],
    6: [(CEILING, (1, 2), (0, -1)), (FRONT, (1, 2, 3, 4), (0, 0)), (FLOOR, (3, 4), (0, 1))],
    7: [(LEFT, (1, 2), (-1, 0)), (FRONT, (1, 2, 3, 4), (0, 0)), (RIGHT, (3, 4), (1, 0))],
    8: [(CEILING, (1, 2), (0, -1)), (FRONT, (1, 2), (0, 1))],
    9: [(FRONT, (1, 2), (0, -1)), (FLOOR, (1, 2), (0, 1))],
    10: [(LEFT, (1, 2), (-1, 0)), (RIGHT, (1, 2), (1, 0))],
}


def _regions_to_semantic(seg: np.ndarray, kind: int, points: np.ndarray, path: Path) -> np.ndarray:
    """Map LSUN region ids to surface classes using the layout type and its corner points."""
    if kind not in _TYPE_REGIONS:
        raise DataFormatError(f"{path}: layout type {kind} has no surfaces to map (expected 0..10)")
    h, w = seg.shape
    step = max(3.0, 0.03 * max(h, w))  # how far off a separating line to sample
    out = np.full(seg.shape, -1, np.int64)
    for surface, corners, (ox, oy) in _TYPE_REGIONS[kind]:
        if max(corners) > len(points):
            raise DataFormatError(f"{path}: layout type {kind} needs {max(corners)} corner points, index has {len(points)}")
        x, y = points[np.array(corners) - 1].mean(axis=0)  # MATLAB (x, y), 1-based pixels
        col = int(np.clip(round(x - 1 + ox * step), 0, w - 1))
        row = int(np.clip(round(y - 1 + oy * step), 0, h - 1))
        region = seg[row, col]
        taken = out[seg == region]
        if (taken >= 0).any() and (taken != surface).any():
            raise DataFormatError(f"{path}: region {region} matches two surfaces for layout type {kind}")
        out[seg == region] = surface
    if (out < 0).any():
        missing = np.unique(seg[out < 0]).tolist()
        raise DataFormatError(f"{path}: regions {missing[:5]} match no surface of layout type {kind}")
    return out


TASK = LayoutTask()
