"""The interface shared by every retrieval task with continuous labels.

A task is a procedural generator with exact labels, a label distance, and a loader for the
real data set's public annotation format. Images are uint8 RGB arrays (N, H, W, 3) so that a
whole split can be stored, memory-mapped and fed to a backbone without a PIL round trip;
``TaskData.image(i)`` gives a PIL image when one is wanted.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

DEFAULT_IMAGE_SIZE = 128


class DataFormatError(ValueError):
    """A real-data file is missing or malformed. The message is one line naming the file."""


@dataclass
class TaskData:
    """One split of a task.

    images: uint8 (N, H, W, 3) RGB.
    labels: float or integer array (N, ...) consumed by ``Task.label_distance``.
    meta: per-image attributes for colouring plots and picking queries, each a length-N
        array or list (e.g. ``{"activity": [...]}``). ``meta["captions"]`` holds the text of
        the caption task.
    arrays: per-image numeric arrays (N, ...) made along with the labels and worth keeping, e.g.
        the caption task's ``"caption_vectors"`` (N, captions, D): the sentence embeddings its
        labels average, which the cross-modal method trains on.
    """

    images: np.ndarray
    labels: np.ndarray
    meta: dict[str, list] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[-1] != 3 or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {self.images.dtype} {self.images.shape}")
        if len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")
        for key, values in self.meta.items():
            if len(values) != len(self.images):
                raise ValueError(f"meta[{key!r}] has {len(values)} entries for {len(self.images)} images")
        for key, values in self.arrays.items():
            if len(values) != len(self.images):
                raise ValueError(f"arrays[{key!r}] has {len(values)} rows for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    def image(self, i: int) -> Image.Image:
        return Image.fromarray(self.images[i])

    def subset(self, indices) -> "TaskData":
        indices = np.asarray(indices)
        return TaskData(
            images=self.images[indices],
            labels=self.labels[indices],
            meta={k: [v[i] for i in indices] for k, v in self.meta.items()},
            arrays={k: v[indices] for k, v in self.arrays.items()},
        )


class Task(abc.ABC):
    """A retrieval task: generator, label distance, real-data loader, label drawing."""

    name: str
    #: Meta keys that make good colourings / query filters, first one is the default.
    attributes: tuple[str, ...] = ()
    #: Attributes whose integer values are category codes, not quantities (LSUN's room type
    #: 0-10): the app colours and filters them as categories, like text attributes.
    categorical: tuple[str, ...] = ()
    #: Shown in the app's task picker and page headers.
    title: str = ""
    #: One line for people: what the label is and how its distance is computed.
    description: str = ""
    #: False for imported data sets (``dml_core.data.tasks.imported``): stored images only, and
    #: ``generate`` raises.
    has_generator: bool = True
    #: Every image carries captions (``meta["captions"]``, lists of sentences): the build adds a
    #: cross-modal model, and the app offers text queries.
    has_captions: bool = False
    #: ``draw_label`` draws the label into the image (a skeleton, layout edges): it can mark
    #: result tiles. False when it writes the label as text beside the image instead.
    label_drawn_on_image: bool = True

    @abc.abstractmethod
    def generate(self, n: int, seed: int, size: int = DEFAULT_IMAGE_SIZE) -> TaskData:
        """Deterministic for (n, seed, size): the same call gives the same bytes."""

    @abc.abstractmethod
    def label_distance(self, labels_a: np.ndarray, labels_b: np.ndarray) -> np.ndarray:
        """(len(a), len(b)) float32 matrix, symmetric in its arguments, 0 for equal labels."""

    def load_real(self, path, size: int = DEFAULT_IMAGE_SIZE, **kwargs) -> TaskData:
        """Read the real data set's public annotation format; DataFormatError on bad input.
        The built-in tasks read theirs (MPII, LSUN, COCO); an imported task's images are stored."""
        raise DataFormatError(f"{self.name} has no real-data format of its own; import a data set with "
                              "python -m dml_core import")

    @abc.abstractmethod
    def draw_label(self, image: Image.Image, label: np.ndarray, meta: dict, width: int = 256) -> Image.Image:
        """The image with its label drawn over it (or under it), for contact sheets, about
        ``width`` px wide: drawing at the size it is shown keeps lines sharp and costs less
        than drawing large and shrinking (result tiles ask for their own width)."""
