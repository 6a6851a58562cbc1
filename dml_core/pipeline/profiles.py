"""Profiles: how much a build makes (split sizes, seeds, steps, dimensions, tuning, the end-to-end track)."""
from __future__ import annotations

from dataclasses import dataclass

from dml_core.core.store import ArtifactStore
from dml_core.data.splits import EXTRA_SPLIT, split_key
from dml_core.data.tasks.base import DEFAULT_IMAGE_SIZE


@dataclass(frozen=True)
class Profile:
    """How much to build. Every method gets the same features, steps and budget."""

    name: str
    sizes: dict  # split -> number of images
    seeds: tuple[int, ...]  # training seeds (the benchmark reports the spread over them)
    steps: int  # optimiser steps per trained model, identical for every method
    image_size: int = DEFAULT_IMAGE_SIZE
    dim: int = 128
    #: The dimension ablation: ``ABLATION_METHODS`` also train at these widths, first seed only;
    #: all seeds cost the full build 12 more heads, ~2 minutes.
    ablation_dims: tuple[int, ...] = (16, 32, 64)
    #: Run every compared method's tuning grid on a validation split carved from the training
    #: split before training (build's "tuning" stage); otherwise the methods' defaults are used.
    tune: bool = False
    #: The end-to-end track: on these tasks, ``CNN_METHODS`` train a compact CNN on
    #: ``cnn_train`` images (the train split plus generated extra ones) for ``cnn_steps`` steps,
    #: at ``dim`` for ``cnn_seeds``.
    cnn_tasks: tuple[str, ...] = ()
    cnn_train: int = 0
    cnn_steps: int = 1500
    cnn_seeds: tuple[int, ...] = (0,)

    def split_size(self, task: str, split: str) -> int:
        if split == EXTRA_SPLIT:
            return max(0, self.cnn_train - self.sizes["train"]) if task in self.cnn_tasks else 0
        return self.sizes[split]


PROFILES = {
    # "tiny" exists for tests and smoke runs: every stage, in seconds.
    "tiny": Profile("tiny", {"train": 160, "gallery": 60, "query": 12}, seeds=(0,), steps=20, ablation_dims=(16,)),
    "quick": Profile("quick", {"train": 1500, "gallery": 500, "query": 100}, seeds=(0,), steps=200),
    # The end-to-end track runs on layout only: on pose the compact CNN scored below the frozen
    # head at 9x its cost (BENCHMARKS.md, "Ceiling", embedder rows), so it bought nothing there.
    # Nor does it train at d=16: it scored there what it scores at d=128 (0.976 against 0.975),
    # and those two trainings cost ~4 minutes of a full build that ran 1 minute past its target.
    "full": Profile("full", {"train": 10000, "gallery": 2000, "query": 500}, seeds=(0, 1, 2), steps=600, tune=True,
                    ablation_dims=(16,), cnn_tasks=("layout",), cnn_train=30000, cnn_steps=1500,
                    cnn_seeds=(0, 1)),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
    return PROFILES[name]


def stored_profile(store: ArtifactStore, task: str) -> Profile:
    """The profile the task's stored data was built with."""
    return get_profile(store.manifest(*split_key(task, "gallery"))["meta"]["profile"])
