"""The model plan: which models a profile builds for a task, in which order, what each embeds and how long it trains."""
from __future__ import annotations

from dataclasses import dataclass

from dml_core.core.vocabulary import BASELINE, HEADLINE_PAIR
from dml_core.data.tasks import get_task
from dml_core.features.backbone import TRAIN_MODE
from dml_core.learn.methods import COMPARED, FINE_TUNE_REGIMES, FINE_TUNED
from dml_core.pipeline.profiles import Profile

#: Every compared method trains at the profile's dimension for every seed.
METHODS_AT_FULL_DIM = COMPARED
#: The dimension ablation trains the headline pair at the profile's ``ablation_dims`` too.
ABLATION_METHODS = HEADLINE_PAIR
#: Image and caption embeddings in one space: what answers text queries on the caption task.
CROSS_MODAL = "cross_modal"


@dataclass(frozen=True)
class ModelSpec:
    method: str
    dim: int | None = None
    seed: int = 0
    prefix: str = ""  # "lab-" for models trained in the Training lab, so they never clash with the build's

    @property
    def id(self) -> str:
        return self.method if self.method == BASELINE else f"{self.prefix}{self.method}-d{self.dim}-s{self.seed}"

    @property
    def projected(self) -> bool:
        """UMAP projections are made for the main models (full dimension, first seed)."""
        return self.method == BASELINE or (self.dim == 128 and self.seed == 0)


def model_plan(profile: Profile, task: str | None = None) -> list[ModelSpec]:
    plan = [ModelSpec(BASELINE)]
    plan += [ModelSpec(m, profile.dim, seed) for seed in profile.seeds for m in METHODS_AT_FULL_DIM]
    plan += [ModelSpec(m, d, profile.seeds[0]) for m in ABLATION_METHODS for d in profile.ablation_dims]
    if task is not None and profile.fine_tune_regime(task) is not None:
        plan += [ModelSpec(m, profile.dim, seed) for seed in profile.fine_tune_seeds for m in FINE_TUNED]
    if task is not None and get_task(task).has_captions:
        plan.append(ModelSpec(CROSS_MODAL, profile.dim, profile.seeds[0]))
    return plan


#: The build's waves, in the order people need them (DESIGN §6): what Compare opens on first,
#: then the other tasks' pairs, every other method, the dimension ablation and further seeds,
#: and the embedders whose backbone trains (the slowest) last.
WAVES = ("first pair", "pairs", "methods", "ablation and seeds", "fine-tuned")


@dataclass(frozen=True)
class QueuedModel:
    """One model of the build's queue: its wave (an index into ``WAVES``), task, spec and
    ``relative_cost`` (what the status's ETA scales by)."""

    wave: int
    task: str
    spec: ModelSpec
    cost: float = 0.0


def wave_of(spec: ModelSpec, task: str, first_task: str, profile: Profile) -> int:
    if spec.method in FINE_TUNED:
        return WAVES.index("fine-tuned")
    main = spec.method == BASELINE or (spec.dim == profile.dim and spec.seed == profile.seeds[0])
    if main and spec.method in HEADLINE_PAIR:
        return 0 if task == first_task else 1
    return 2 if main else 3


def build_queue(profile: Profile, tasks) -> list[QueuedModel]:
    """Every planned model of ``tasks`` in build order: by wave, then task (in ``tasks``' order,
    so the first task's pair comes first), then the plan's own order."""
    tasks = list(tasks)
    queue = [QueuedModel(wave_of(spec, task, tasks[0], profile), task, spec, relative_cost(spec, task, profile))
             for task in tasks for spec in model_plan(profile, task)]
    return sorted(queue, key=lambda entry: entry.wave)  # stable: task and plan order kept within a wave


def regime_settings(task: str, method: str, profile: Profile) -> dict:
    """The settings a fine-tuned method takes from the task's regime ({} for other methods)."""
    regime = profile.fine_tune_regime(task) if method in FINE_TUNED else None
    return dict(FINE_TUNE_REGIMES[regime]) if regime is not None else {}


def embedder(task: str, method: str, profile: Profile) -> str:
    """What ``method`` trains on ``task`` ("head", "top_blocks" or "cnn", ``learn.methods.EMBEDDERS``)."""
    from dml_core.learn.methods import METHODS

    if method not in METHODS:
        return "head"
    return regime_settings(task, method, profile).get("embedder", METHODS[method].embedder)


def planned_steps(spec: ModelSpec, task: str, profile: Profile) -> int:
    if spec.method == BASELINE:
        return 0
    return profile.cnn_steps if embedder(task, spec.method, profile) == "cnn" else profile.steps


#: Single-thread cost of one training step relative to a head's, from the full build's model times on
#: 2 cores (per model, evaluation included: a head ~30 s for 600 steps, the top block ~250 s, blocks 13-15
#: ~545 s, the CNN ~300 s for 1,500 steps): what starts the slowest jobs first and scales the ETA. A
#: top-blocks embedder costs ``STEP_COST["top_blocks"]`` with one trained block and
#: ``EXTRA_BLOCK_STEP_COST`` more for each further one.
STEP_COST = {"head": 1, "top_blocks": 8, "cnn": 4}
EXTRA_BLOCK_STEP_COST = 5


def relative_cost(spec: ModelSpec, task: str, profile: Profile) -> float:
    """Rough single-thread cost of training ``spec`` on ``task``."""
    kind = embedder(task, spec.method, profile)
    step = STEP_COST[kind]
    if kind == "top_blocks":
        step += EXTRA_BLOCK_STEP_COST * max(0, regime_settings(task, spec.method, profile).get("trained_blocks", 1) - 1)
    return planned_steps(spec, task, profile) * step


def feature_mode(method: str, settings: dict | None = None) -> str:
    """What a model embeds: pooled or 2x2 backbone features, the backbone's activations below its
    trained blocks, or images at the CNN's size."""
    from dml_core.learn.cnn import CNN_IMAGE_SIZE
    from dml_core.learn.methods import METHODS, get_method
    from dml_core.learn.top_blocks import split_mode

    if method == BASELINE:
        return "pooled"
    if method not in METHODS:
        return TRAIN_MODE
    config = get_method(method, **(settings or {}))
    if config.embedder == "cnn":
        return f"images{CNN_IMAGE_SIZE}"
    return split_mode(config.trained_blocks) if config.embedder == "top_blocks" else TRAIN_MODE


def activation_modes(task: str, profile: Profile) -> tuple[str, ...]:
    """The backbone activations (``"block<k>"`` feature modes) the task's fine-tuned pair trains on:
    what the features stage caches in the same pass as the heads' features."""
    modes = (feature_mode(method, regime_settings(task, method, profile)) for method in FINE_TUNED)
    return tuple(sorted({mode for mode in modes if mode.startswith("block")}))


def trained_config(method: str, settings: dict) -> dict | None:
    """The full method configuration a model trains with (None for the untrained baseline):
    stored with the model, so a change of a method's defaults retrains it."""
    from dml_core.learn.methods import METHODS, get_method

    return get_method(method, **settings).to_dict() if method in METHODS else None
