"""The tuning stage: every compared method's grid on a validation split of the training images."""
from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from dml_core.core.store import ArtifactStore
from dml_core.data.tasks import TASK_NAMES, get_task
from dml_core.learn.methods import FINE_TUNED, base_method
from dml_core.pipeline.features import KEEP_LABEL_MATRIX_MAX, TaskFeatures, forget_loaded, worker_task_features
from dml_core.pipeline.plan import METHODS_AT_FULL_DIM, regime_settings
from dml_core.pipeline.profiles import Profile

#: Share of the training split held out to choose each method's setting; a fifth of it
#: queries the rest.
VALIDATION_FRACTION = 0.2


class Validation:
    """The tuning split of a task's training features: fit on the first 80 %, query a fifth of
    the rest against the others."""

    def __init__(self, data: "TaskFeatures"):
        from dml_core.learn.mining import LabelNeighbours

        self.label_distance = get_task(data.task).label_distance
        features, labels = data.features["train"], data.train.labels
        n_val = int(len(features) * VALIDATION_FRACTION)
        n_fit = len(features) - n_val
        n_val_query = max(1, n_val // 5)
        self.fit_x, self.fit_y = features[:n_fit], labels[:n_fit]
        self.query, self.gallery = features[n_fit:n_fit + n_val_query], features[n_fit + n_val_query:]
        self.label_dist = self.label_distance(labels[n_fit:n_fit + n_val_query], labels[n_fit + n_val_query:])
        self.neighbours = LabelNeighbours(self.fit_y, self.label_distance, k=min(30, n_fit - 1),
                                          keep_matrix_max=KEEP_LABEL_MATRIX_MAX)

    def score(self, config, profile: Profile) -> float:
        """Validation nDCG@10 of ``config`` trained with the profile's budget and first seed."""
        from dml_core.evaluate.metrics import evaluate
        from dml_core.learn.model import embed
        from dml_core.learn.train import fit

        model, _ = fit(self.fit_x, self.fit_y, self.label_distance, method=config, dim=profile.dim, steps=profile.steps,
                       seed=profile.seeds[0], neighbours=self.neighbours, progress=False)
        metric = "cosine" if model.normalize else "l2"
        return float(evaluate(embed(model, self.query), embed(model, self.gallery), self.label_dist, ks=(10,),
                              metric=metric)["ndcg@10"])


#: Per worker process: the validation split of each task it has tuned on.
_VALIDATIONS: dict[tuple[str, str], Validation] = {}


def _tuning_job(root: str, task: str, profile: Profile, method: str, index: int) -> float:
    from dml_core.learn.methods import tuning_configs

    if (root, task) not in _VALIDATIONS:
        _VALIDATIONS[(root, task)] = Validation(worker_task_features(root, task))
    return _VALIDATIONS[(root, task)].score(tuning_configs(method)[index], profile)


def tune_task(store: ArtifactStore, task: str, profile: Profile, progress: bool = True, workers: int = 1,
              pool=None) -> dict:
    """Run the tuning grid of every compared method on a validation split of the task's training
    split (same grid size, steps, seed and dimension for every method) and pick, per method, the
    setting with the best validation nDCG@10. Settings train in ``workers`` processes.

    Returns ``{method: {"chosen": index, "settings": overrides, "scores": [nDCG@10 per setting]}}``.
    The query and gallery splits are never looked at.
    """
    from dml_core.core.workers import run_jobs
    from dml_core.learn.methods import TUNING_GRIDS

    jobs = [(str(store.root), task, profile, method, index)
            for method in METHODS_AT_FULL_DIM for index in range(len(TUNING_GRIDS[method]))]
    with tqdm(total=len(jobs), desc=f"tuning {task}", unit="setting", disable=not progress) as bar:
        try:
            scores = run_jobs(_tuning_job, jobs, workers, on_done=lambda job, score: bar.update(1), pool=pool)
        finally:
            _VALIDATIONS.clear()
            forget_loaded()
    result = {}
    for method in METHODS_AT_FULL_DIM:
        method_scores = [score for job, score in zip(jobs, scores) if job[3] == method]
        best = int(np.argmax(method_scores))
        result[method] = {"chosen": best, "settings": TUNING_GRIDS[method][best],
                          "scores": [round(float(v), 5) for v in method_scores]}
    return result


def build_tuning(store: ArtifactStore, profile: Profile, tasks=TASK_NAMES, progress: bool = True, workers: int = 1,
                 pool=None) -> list[str]:
    """Tune the compared methods of every task whose profile asks for it (``Profile.tune``)."""
    built = []
    if not profile.tune:
        return built
    for task in tasks:
        key = (task, "tuning")
        if store.is_valid(*key) and _tuning_matches(store.manifest(*key)["meta"], profile):
            continue
        result = tune_task(store, task, profile, progress, workers, pool)
        with store.writer(*key, meta={"profile": profile.name, "steps": profile.steps, "methods": result,
                                      "grids": _grids()}):
            pass
        built.append(task)
    return built


def _grids() -> dict:
    from dml_core.learn.methods import TUNING_GRIDS

    return {method: TUNING_GRIDS[method] for method in METHODS_AT_FULL_DIM}


def _tuning_matches(meta: dict, profile: Profile) -> bool:
    """A stored tuning result is current for this profile, these methods and their grids."""
    return meta.get("profile") == profile.name and meta.get("steps") == profile.steps and meta.get("grids") == _grids()


def tuned_settings(store: ArtifactStore, task: str, profile: Profile, method: str) -> dict:
    """The overrides ``method`` trains with on ``task``: the tuning stage's choice, or {} (the method's
    defaults) when the profile is not tuned or the method has no tuning grid. A fine-tuned method
    (``learn.methods.FINE_TUNED``) takes its base method's choice, then the task's regime: both
    methods of the pair train with what validation chose for their loss and mining, and no backbone
    is trained for a grid of its own."""
    if method in FINE_TUNED:
        return {**tuned_settings(store, task, profile, base_method(method)), **regime_settings(task, method, profile)}
    key = (task, "tuning")
    if not profile.tune or method not in METHODS_AT_FULL_DIM or not store.is_valid(*key):
        return {}
    meta = store.manifest(*key)["meta"]
    return meta["methods"][method]["settings"] if _tuning_matches(meta, profile) else {}
