"""Caption task: scenes of named objects described by COCO-style captions.

Default data: procedural scenes of 1-5 objects from 30 categories in 5 super-categories
(animals, food, vehicles, plants, objects), drawn as Noto Color Emoji sprites (or simple PIL
drawings when the emoji font is absent), with counts (1-3 copies), colours (for recolourable
categories), sizes, positions and varied backgrounds; 5 generated captions per image.

Label: the captions. An image's label vector is the L2-normalised mean of its captions'
sentence embeddings (``dml_core.core.text``: offline MiniLM, or the lexical fallback); see
``CaptionTask.label_distance`` for the distance.

Real data: MS-COCO captions JSON (``captions_train2017.json`` format) plus its image folder,
see ``CaptionTask.load_real``.
"""
from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dml_core.core import text as text_embedding
from dml_core.data.tasks._caption_scene import BACKGROUNDS, ObjectGroup, Scene, render_scene, sample_scene
from dml_core.data.tasks._caption_sprites import CATEGORIES, CATEGORY_BY_NAME, GROUPS, SpriteSet
from dml_core.data.tasks._caption_text import N_CAPTIONS, write_captions
from dml_core.data.tasks.base import DEFAULT_IMAGE_SIZE, DataFormatError, Task, TaskData

__all__ = [
    "BACKGROUNDS", "CAPTION_VECTORS", "CATEGORIES", "GROUPS", "N_CAPTIONS", "TASK", "CaptionTask", "ObjectGroup",
    "Scene",
]

#: ``TaskData.arrays`` key of generated splits: (N, captions, D) unit sentence embeddings.
CAPTION_VECTORS = "caption_vectors"

_LABEL_FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
)


def _label_font(size: int) -> ImageFont.ImageFont:
    for path in _LABEL_FONT_PATHS:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def _centre_crop_resize(image: Image.Image, size: int) -> Image.Image:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)


def _objects_in_text(captions: Sequence[str]) -> list[str]:
    """Category names whose nouns occur in the captions (a crude tag for real images)."""
    words = set(text_embedding.lexical_tokens(" ".join(captions)))
    found = []
    for category in CATEGORIES:
        nouns = {text_embedding.lexical_tokens(noun)[-1] for pair in category.nouns for noun in pair}
        if words & nouns:
            found.append(category.name)
    return found


class CaptionTask(Task):
    """Scenes of named objects; label = mean caption embedding; distance = 1 - cosine.

    Args:
        sprite_source: "auto" (emoji font when present, else drawn), "emoji" or "drawn".
        text_backend: sentence-embedding backend for labels ("minilm", "lexical", "auto" or
            None = ``DML_TEXT_BACKEND`` / auto); see ``dml_core.core.text``.
        font_path: the Noto Color Emoji file (default: the Debian path or ``DML_EMOJI_FONT``).
    """

    name = "caption"
    has_captions = True
    title = "Image captions"
    description = "Object scenes; label = captions; distance = 1 − cosine similarity of sentence embeddings."
    attributes = ("category", "main_object", "n_objects", "background")

    def __init__(self, sprite_source: str = "auto", text_backend: str | None = None, font_path: str | None = None):
        self._sprite_source = sprite_source
        self._font_path = font_path
        self._sprites: SpriteSet | None = None
        self.text_backend_name = text_backend

    # ---------------------------------------------------------------------------- components
    @property
    def sprites(self) -> SpriteSet:
        if self._sprites is None:
            self._sprites = SpriteSet(self._sprite_source, self._font_path)
        return self._sprites

    @property
    def sprite_source(self) -> str:
        """"emoji" or "drawn": what this task instance actually renders with."""
        return self.sprites.source

    @property
    def text_backend(self) -> str:
        """"minilm" or "lexical": the sentence-embedding backend that labels come from."""
        return text_embedding.text_backend(self.text_backend_name)

    # ------------------------------------------------------------------------------ labels
    def label_from_captions(self, caption_lists: Sequence[Sequence[str]], progress=False) -> np.ndarray:
        """Label vectors for images described by any number (>= 1) of captions each.

        label_i = m_i / |m_i|,  m_i = mean_k e(c_ik),  e = unit sentence embedding.
        Returns float32 (N, D). Real data and text queries go through this same path.
        """
        return self._labels_and_caption_vectors(caption_lists, progress)[0]

    def _labels_and_caption_vectors(self, caption_lists, progress=False) -> tuple[np.ndarray, np.ndarray]:
        """(labels (N, D), the unit caption embeddings e(c_ik) they average, flat (sum of counts, D))."""
        counts = np.array([len(captions) for captions in caption_lists], dtype=np.int64)
        if len(counts) and counts.min() < 1:
            raise ValueError(f"image {int(np.argmin(counts))} has no caption; every image needs at least one")
        flat = [str(c) for captions in caption_lists for c in captions]
        dim = text_embedding.embedding_dim(self.text_backend_name)
        if not flat:
            return np.zeros((0, dim), dtype=np.float32), np.zeros((0, dim), dtype=np.float32)
        vectors = text_embedding.embed_sentences(flat, progress=progress, backend=self.text_backend_name)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        means = np.add.reduceat(vectors.astype(np.float64), starts, axis=0) / counts[:, None]
        norms = np.linalg.norm(means, axis=1, keepdims=True)
        return (means / np.maximum(norms, 1e-12)).astype(np.float32), vectors

    def embed_query_text(self, text: str) -> np.ndarray:
        """A text query as a label vector (D,), comparable with image labels by label_distance."""
        if not str(text).strip():
            raise ValueError("the text query is empty")
        return self.label_from_captions([[text]])[0]

    def label_distance(self, labels_a: np.ndarray, labels_b: np.ndarray) -> np.ndarray:
        """Caption distance d(a, b) = clip(1 - <l_a, l_b>, 0, 2), float32 (len(a), len(b)).

        Derivation. Let image a have unit caption embeddings e_a1..e_aK (K_a captions) and
        m_a = (1/K_a) sum_k e_ak their mean. The average cosine similarity over all caption
        pairs is  S(a, b) = (1/(K_a K_b)) sum_k sum_l <e_ak, e_bl> = <m_a, m_b>.  An image's
        own captions are not identical sentences, so S(a, a) = |m_a|^2 < 1; normalising by
        each image's self-similarity gives
            S(a, b) / sqrt(S(a, a) S(b, b)) = <m_a/|m_a|, m_b/|m_b|> = <l_a, l_b>,
        where l = m/|m| is the stored label. Hence d = 1 - <l_a, l_b> is 1 minus the
        self-normalised average caption-pair cosine similarity: symmetric, in [0, 2], and
        exactly 0 for identical labels (set explicitly, since float rounding of <l, l> can
        leave ~1e-7). Computed in float64 up to 16M pairs, in float32 (error ~1e-7) beyond.
        """
        a = np.atleast_2d(np.asarray(labels_a))
        b = np.atleast_2d(np.asarray(labels_b))
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
            raise ValueError(f"caption labels must be (N, D) with equal D, got {a.shape} and {b.shape}")
        dtype = np.float64 if len(a) * len(b) <= 16_000_000 else np.float32
        a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
        distance = np.clip(1.0 - a @ b.T, 0.0, 2.0)
        rows_b: dict[bytes, list[int]] = {}
        for j, row in enumerate(np.ascontiguousarray(b)):
            rows_b.setdefault(row.tobytes(), []).append(j)
        for i, row in enumerate(np.ascontiguousarray(a)):
            same = rows_b.get(row.tobytes())
            if same:
                distance[i, same] = 0.0
        return distance.astype(np.float32)

    # -------------------------------------------------------------------------- generation
    def sample_scenes(self, n: int, seed: int) -> list[tuple[Scene, list[str]]]:
        """(scene, 5 captions) for images 0..n-1; image i depends only on (seed, i)."""
        out = []
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            scene = sample_scene(rng)
            out.append((scene, write_captions(scene, rng)))
        return out

    def from_scenes(
        self,
        scenes: Sequence[Scene],
        size: int = DEFAULT_IMAGE_SIZE,
        captions: Sequence[Sequence[str]] | None = None,
        seed: int = 0,
        progress: bool | Callable[[int, int], None] = False,
    ) -> TaskData:
        """Render given scenes; captions are written (seeded by (seed, i)) unless supplied."""
        if captions is None:
            captions = [write_captions(scene, np.random.default_rng([seed, i, 7])) for i, scene in enumerate(scenes)]
        if len(captions) != len(scenes):
            raise ValueError(f"{len(scenes)} scenes but {len(captions)} caption lists")
        images = np.empty((len(scenes), size, size, 3), dtype=np.uint8)
        for i, scene in enumerate(scenes):
            images[i] = render_scene(scene, size, self.sprites)
        labels, vectors = self._labels_and_caption_vectors(captions, progress=progress)
        per_image = {len(c) for c in captions}
        # Kept for the cross-modal method, which trains on single captions: embedding them
        # again would cost as much as this split's whole text pass.
        arrays = {CAPTION_VECTORS: vectors.reshape(len(captions), per_image.pop(), -1)} if len(per_image) == 1 else {}
        meta = {
            "captions": [list(c) for c in captions],
            "objects": [", ".join(g.category for g in s.groups) for s in scenes],
            "category": [CATEGORY_BY_NAME[s.main.category].group for s in scenes],
            "main_object": [s.main.category for s in scenes],
            "n_objects": [s.n_objects for s in scenes],
            "background": [s.background for s in scenes],
        }
        return TaskData(images=images, labels=labels, meta=meta, arrays=arrays)

    def generate(
        self,
        n: int,
        seed: int,
        size: int = DEFAULT_IMAGE_SIZE,
        progress: bool | Callable[[int, int], None] = False,
    ) -> TaskData:
        """n scenes with 5 captions each. Image i and its label depend only on (seed, i, size),
        so generate(n, seed)[:k] equals generate(k, seed) bit for bit (a sentence's embedding
        does not depend on its batch-mates; ``dml_core.core.text``).

        meta: captions (5 strings), objects ("dog, ball"), category (main object's
        super-category), main_object, n_objects (instances, 1-5), background.
        """
        if n < 0 or size < 16:
            raise ValueError(f"need n >= 0 and size >= 16, got n={n}, size={size}")
        pairs = self.sample_scenes(n, seed)
        return self.from_scenes([s for s, _ in pairs], size, captions=[c for _, c in pairs], progress=progress)

    # --------------------------------------------------------------------------- real data
    def load_real(
        self,
        path,
        size: int = DEFAULT_IMAGE_SIZE,
        images_dir=None,
        max_images: int | None = None,
        progress=False,
        on_skip=None,
        **kwargs,
    ) -> TaskData:
        """Read MS-COCO captions: ``captions_<split>.json`` plus its image folder.

        JSON: {"images": [{"id", "file_name", ...}], "annotations": [{"image_id", "caption",
        ...}]}. Images keep the JSON order; images with no caption are skipped; every caption
        of an image goes into its label (COCO has 5-7). Image folder: ``images_dir`` if given,
        else the first existing of <json dir>/<split>, <json dir>/../<split> (the COCO layout
        annotations/ + train2017/), <json dir>/images, <json dir>/../images, where <split> is
        the JSON name after "captions_" (e.g. train2017). Images are centre-cropped to a
        square and resized to ``size``. ``max_images`` keeps the first so many.
        meta: captions, objects / main_object / category / n_objects guessed from caption
        words naming the task's categories ("" / "other" when none), image_id, file_name.
        Raises DataFormatError (one line naming the file) on a missing or malformed file; with
        ``on_skip(file_name, reason)`` an image without a caption or whose file is missing or
        unreadable is reported through it and left out instead. Images are decoded with
        ``dml_core.core.images``' limits.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments: {', '.join(kwargs)}")
        path = Path(path)
        if not path.is_file():
            raise DataFormatError(f"{path}: COCO captions file not found")
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DataFormatError(f"{path}: cannot read ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
            raise DataFormatError(f"{path}: expected a JSON object with 'images' and 'annotations' lists (COCO captions format)")
        files: dict[int, str] = {}
        for k, entry in enumerate(data["images"]):
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), int) or not isinstance(entry.get("file_name"), str):
                raise DataFormatError(f"{path}: images[{k}] needs an integer 'id' and a string 'file_name'")
            if entry["id"] in files:
                raise DataFormatError(f"{path}: duplicate image id {entry['id']} in images[{k}]")
            files[entry["id"]] = entry["file_name"]
        captions: dict[int, list[str]] = {image_id: [] for image_id in files}
        for k, entry in enumerate(data["annotations"]):
            if not isinstance(entry, dict) or not isinstance(entry.get("image_id"), int) or not isinstance(entry.get("caption"), str):
                raise DataFormatError(f"{path}: annotations[{k}] needs an integer 'image_id' and a string 'caption'")
            if entry["image_id"] not in captions:
                raise DataFormatError(f"{path}: annotations[{k}] refers to unknown image id {entry['image_id']}")
            if entry["caption"].strip():
                captions[entry["image_id"]].append(" ".join(entry["caption"].split()))
        if on_skip is not None:
            for image_id in files:
                if not captions[image_id]:
                    on_skip(files[image_id], "no caption")
        image_ids = [image_id for image_id in files if captions[image_id]]
        if not image_ids:
            raise DataFormatError(f"{path}: no image has a caption")
        if max_images is not None:
            image_ids = image_ids[: max(0, int(max_images))]
        folder = self._coco_image_dir(path, images_dir)
        from dml_core.core.images import ImageInputError, read_image_file

        readable, pixels = [], []
        for image_id in image_ids:
            file = folder / files[image_id]
            try:
                pixels.append(np.asarray(_centre_crop_resize(read_image_file(file), size)))
                readable.append(image_id)
            except ImageInputError as exc:
                if on_skip is None:
                    raise DataFormatError(f"{file}: cannot read image listed in {path.name} ({exc})") from None
                on_skip(files[image_id], f"cannot read image ({exc})")
        if not readable:
            raise DataFormatError(f"{path}: no listed image could be read")
        image_ids, images = readable, np.stack(pixels)
        caption_lists = [captions[image_id] for image_id in image_ids]
        labels = self.label_from_captions(caption_lists, progress=progress)
        objects = [_objects_in_text(c) for c in caption_lists]
        meta = {
            "captions": caption_lists,
            "objects": [", ".join(o) for o in objects],
            "category": [CATEGORY_BY_NAME[o[0]].group if o else "other" for o in objects],
            "main_object": [o[0] if o else "other" for o in objects],
            "n_objects": [len(o) for o in objects],
            "image_id": image_ids,
            "file_name": [files[image_id] for image_id in image_ids],
        }
        return TaskData(images=images, labels=labels, meta=meta)

    @staticmethod
    def _coco_image_dir(path: Path, images_dir) -> Path:
        if images_dir is not None:
            folder = Path(images_dir)
            if not folder.is_dir():
                raise DataFormatError(f"{folder}: image folder not found")
            return folder
        split = path.stem.removeprefix("captions_")
        candidates = [path.parent / split, path.parent.parent / split, path.parent / "images", path.parent.parent / "images"]
        for folder in candidates:
            if folder.is_dir():
                return folder
        raise DataFormatError(f"{path}: image folder not found (looked for {', '.join(str(c) for c in candidates)}; pass images_dir=)")

    # ---------------------------------------------------------------------------- drawing
    def draw_label(self, image, label: np.ndarray | None = None, meta: dict | None = None, width: int = 256) -> Image.Image:
        """The image upsampled to ``width`` px with its first caption, wrapped, in a band below.

        meta: the image's own meta entries, e.g. {"captions": [...], "objects": "dog, ball"}.
        """
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        image = image.convert("RGB").resize((width, round(width * image.height / image.width)), Image.Resampling.BICUBIC)
        meta = meta or {}
        captions = meta.get("captions") or []
        caption = captions[0] if len(captions) else "(no caption)"
        font = _label_font(max(10, width // 19))
        chars_per_line = max(10, int(width / (font.size * 0.52)))
        lines = textwrap.wrap(caption, chars_per_line)[:4]
        line_height = font.size + 3
        band = 6 + line_height * max(1, len(lines)) + 4
        canvas = Image.new("RGB", (image.width, image.height + band), (250, 250, 248))
        canvas.paste(image, (0, 0))
        draw = ImageDraw.Draw(canvas)
        for k, line in enumerate(lines):
            draw.text((5, image.height + 5 + k * line_height), line, fill=(25, 25, 25), font=font)
        return canvas


TASK = CaptionTask()
