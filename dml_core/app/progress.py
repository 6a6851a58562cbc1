"""The background build as the pages show it: its progress in words, where a task or model
not built yet stands in the queue, and what to do when the build failed or stopped."""
from __future__ import annotations

from dataclasses import dataclass, field

from dml_core.pipeline.plan import WAVES
from dml_core.pipeline.status import read_status

#: Words for a build's stage while it runs (``pipeline.stages.STAGES``).
STAGE_WORDS = {
    "starting": "starting", "data": "generating images", "features": "computing backbone features",
    "label_distances": "computing label distances", "tuning": "tuning the methods", "models": "training models",
    "search": "writing search indexes",
}


@dataclass
class BuildProgress:
    """One reading of ``DML_HOME/build-status.json`` (``pipeline.status``)."""

    state: str  # running | done | failed | stopped | interrupted
    stage: str
    stage_tasks: list[str]
    wave: int | None
    done: int
    planned: int
    eta_s: float | None
    log: str | None
    error: str | None
    profile: str
    queue: list[dict] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def fraction(self) -> float:
        return self.done / self.planned if self.planned else 0.0

    def done_models(self, task: str) -> tuple[str, ...]:
        return tuple(e["model"] for e in self.queue if e["task"] == task and e["state"] == "done")

    def headline(self) -> str:
        """One line: what the build does now, how far it is, how long it has left."""
        if self.state == "done":
            return f"Build done: {self.planned} models"
        if not self.running:
            return f"Build {self.state}: {self.done} of {self.planned} models built"
        doing = STAGE_WORDS.get(self.stage, self.stage)
        where = f" ({', '.join(self.stage_tasks)})" if self.stage_tasks else ""
        waves = 1 + max((e["wave"] for e in self.queue), default=0)  # a profile without fine-tuned models has 4
        wave = f" · wave {self.wave + 1} of {waves}: {WAVES[self.wave]}" if self.wave is not None else ""
        return f"Building: {doing}{where}{wave} · {self.done} of {self.planned} models · {eta_words(self.eta_s)}"

    def queue_place(self, task: str, model_id: str | None = None) -> str:
        """Where ``task`` (or one of its models) stands in the queue, in words."""
        waiting = [e for e in self.queue if e["state"] != "done"]
        mine = [i for i, e in enumerate(waiting) if e["task"] == task and (model_id is None or e["model"] == model_id)]
        if not mine:
            return "not in this build's queue"
        ahead, entry = mine[0], waiting[mine[0]]
        if ahead == 0 or (self.running and entry["wave"] == self.wave and task in self.stage_tasks):
            return f"being built now (wave {entry['wave'] + 1}, {WAVES[entry['wave']]})"
        return f"queued: {ahead} model{'s' * (ahead != 1)} ahead of it (wave {entry['wave'] + 1}, {WAVES[entry['wave']]})"

    def trouble(self) -> str | None:
        """What went wrong, with where the log is and how to resume (None when nothing did)."""
        log = f" Its log: `{self.log}`." if self.log else ""
        if self.state == "failed":
            return f"**The build failed** ({self.error or 'no message'}).{log} Run `make run` again to resume it."
        if self.state in ("stopped", "interrupted"):
            how = "was stopped" if self.state == "stopped" else "was interrupted (its process ended without finishing)"
            return (f"**The build {how}** after {self.done} of {self.planned} models.{log} "
                    "Run `make run` again to resume where it stopped.")
        return None


def eta_words(seconds: float | None) -> str:
    """The status's ETA in words; it counts the queued models' training (images and features
    still to make for a later wave come on top)."""
    if seconds is None:
        return "time left: measuring"
    if seconds < 60:
        return "under a minute of training left"
    return f"about {round(seconds / 60)} min of training left"


def build_progress(root: str) -> BuildProgress | None:
    """The last build's progress under ``root`` (None when no build has written one)."""
    status = read_status(root)
    if status is None:
        return None
    queue = status.get("queue") or []
    return BuildProgress(
        state=status["state"], stage=status.get("stage", ""), stage_tasks=status.get("stage_tasks") or [],
        wave=status.get("wave"), done=sum(e.get("state") == "done" for e in queue), planned=len(queue),
        eta_s=status.get("eta_s"), log=status.get("log"), error=status.get("error"), profile=status.get("profile", ""),
        queue=queue,
    )
