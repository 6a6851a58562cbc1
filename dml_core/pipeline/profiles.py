"""Profiles: how much a build makes (split sizes, seeds, steps, dimensions, tuning, the fine-tuned pair and its regime per task)."""
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
    #: The fine-tuned pair (``learn.methods.FINE_TUNED``): on each task, the regime of
    #: ``learn.methods.FINE_TUNE_REGIMES`` it trains with (``fine_tune``: (task, regime) pairs;
    #: ``fine_tune_default`` for tasks not named, imported ones included; None: no fine-tuned
    #: models), at ``dim`` for ``fine_tune_seeds``. The "cnn" regime trains a compact CNN on
    #: ``cnn_train`` images (the train split plus generated extra ones) for ``cnn_steps`` steps;
    #: the "top_blocks" regime trains the profile's ``steps``, like the heads.
    fine_tune: tuple[tuple[str, str], ...] = ()
    fine_tune_default: str | None = None
    fine_tune_seeds: tuple[int, ...] = (0,)
    cnn_train: int = 0
    cnn_steps: int = 1500

    def fine_tune_regime(self, task: str) -> str | None:
        """The regime the task's fine-tuned pair trains with, None if the profile has none for it."""
        return dict(self.fine_tune).get(task, self.fine_tune_default)

    @property
    def cnn_tasks(self) -> tuple[str, ...]:
        """Tasks whose fine-tuned pair is the compact CNN (they get the extra training split)."""
        return tuple(task for task, regime in self.fine_tune if regime == "cnn")

    def split_size(self, task: str, split: str) -> int:
        if split == EXTRA_SPLIT:
            return max(0, self.cnn_train - self.sizes["train"]) if task in self.cnn_tasks else 0
        return self.sizes[split]


PROFILES = {
    # "tiny" exists for tests and smoke runs: every stage, in seconds. "tiny_ft" adds the fine-tuned
    # pair on every task (~10 s a model), for the tests of that track.
    "tiny": Profile("tiny", {"train": 160, "gallery": 60, "query": 12}, seeds=(0,), steps=20, ablation_dims=(16,)),
    "tiny_ft": Profile("tiny_ft", {"train": 160, "gallery": 60, "query": 12}, seeds=(0,), steps=20, ablation_dims=(16,),
                       fine_tune_default="top_blocks"),
    # The fine-tuned pair trains the top block on every task: on this profile's data it beat the frozen
    # head on all three tasks and the compact CNN (which fell below the head on pose and caption) in a
    # third of the CNN's time; the head convolution alone gained about half as much or less (BENCHMARKS.md,
    # "Ceiling", quick embedder rows).
    "quick": Profile("quick", {"train": 1500, "gallery": 500, "query": 100}, seeds=(0,), steps=200,
                     fine_tune_default="top_blocks"),
    # Layout keeps the compact CNN end to end: on 30,000 images it reached nDCG@10 0.975 there (the
    # previous full bench); on pose it scored below the frozen head at 9x its cost (BENCHMARKS.md,
    # "Ceiling", full embedder rows). Pose trains blocks 13-15: on this profile's data they closed 0.503
    # of the gap in the ceiling's run (one seed) where the frozen heads closed at most 0.417, the top
    # block alone gaining little more than the head on the quick data; in the full bench 0.507 over two
    # seeds with the tuned (squared) distance, 0.488 with the plain one, at ~510 s a model. Caption trains
    # the top block, less than half that cost. Nor does the CNN train at d=16: it scored there what it scores at d=128 (0.976 against 0.975).
    "full": Profile("full", {"train": 10000, "gallery": 2000, "query": 500}, seeds=(0, 1, 2), steps=600, tune=True,
                    ablation_dims=(16,), fine_tune=(("layout", "cnn"), ("pose", "top_3_blocks")),
                    fine_tune_default="top_blocks",
                    fine_tune_seeds=(0, 1), cnn_train=30000, cnn_steps=1500),
}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}")
    return PROFILES[name]


def stored_profile(store: ArtifactStore, task: str) -> Profile:
    """The profile the task's stored data was built with."""
    return get_profile(store.manifest(*split_key(task, "gallery"))["meta"]["profile"])
