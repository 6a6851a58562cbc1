"""Resumable checkpoints and stored models:

    directory/config.json                 model spec, method, seed, steps, history, RNG state,
                                          file names + SHA-256 of the tensor files
    directory/model-<step>.safetensors    model weights
    directory/optimizer-<step>.safetensors  AdamW state + torch RNG state (resume only)

Nothing is pickled. Each file is written to a temp file and renamed; config.json is replaced
last and names the tensor files it belongs to, so a killed writer leaves the previous,
consistent checkpoint. Checksums are verified on load; a mismatch raises
:class:`CheckpointError`.
"""
from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
import torch
from torch import nn

from dml_core.core.store import atomic_write_bytes
from dml_core.learn.model import EmbeddingModel

FORMAT = "dml_core.embedding_model/1"


CONFIG_FILE = "config.json"


_TENSOR_FILE = re.compile(r"^(model|optimizer)-\d+\.safetensors$")


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, corrupt, or made for another run (one-line message)."""


#: Trunk builders as checkpoints written before the library's stage folders name them.
_MOVED_BUILDERS = {"dml_core.cnn:compact_cnn": "dml_core.learn.cnn:compact_cnn"}


def _import_trunk(spec: dict) -> nn.Module:
    builder = str(spec.get("builder", ""))
    builder = _MOVED_BUILDERS.get(builder, builder)
    module_name, _, function_name = builder.partition(":")
    if not module_name.startswith("dml_core.") or not function_name:
        raise CheckpointError(f"trunk builder {builder!r} refused: must be 'dml_core.<module>:<function>'")
    return getattr(importlib.import_module(module_name), function_name)(**spec.get("kwargs", {}))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    tensors = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            value = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"state.{index}.{key}"] = value.detach().cpu().contiguous().clone()
    return tensors


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("state."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    full = optimizer.state_dict()
    full["state"] = state
    optimizer.load_state_dict(full)


def save_checkpoint(directory, model: EmbeddingModel, meta: dict,
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write model (+ optimizer and torch RNG state) and config.json atomically into ``directory``.

    meta: JSON-serialisable run description (method, seed, steps, steps_done, history, rng);
    the model spec and the file checksums are added. Returns the config path.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    step = int(meta.get("steps_done", 0))
    model_tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    files = {f"model-{step:07d}.safetensors": safetensors.torch.save(model_tensors)}
    if optimizer is not None:
        opt = optimizer_tensors(optimizer)
        opt["torch_rng_state"] = torch.get_rng_state()
        files[f"optimizer-{step:07d}.safetensors"] = safetensors.torch.save(opt)
    for name, data in files.items():
        atomic_write_bytes(directory / name, data)
    config = {**meta, "format": FORMAT, "model": model.spec(),
              "files": {("model" if n.startswith("model") else "optimizer"): {"name": n, "sha256": _sha256(d)}
                        for n, d in files.items()}}
    config_path = directory / CONFIG_FILE
    atomic_write_bytes(config_path, json.dumps(config, indent=1).encode())
    for stale in directory.iterdir():                       # files of older checkpoints
        if _TENSOR_FILE.match(stale.name) and stale.name not in files:
            stale.unlink(missing_ok=True)
    return config_path


def read_checkpoint(directory) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """(config, {"model": tensors, "optimizer": tensors?}) of a checkpoint, verified.

    Raises CheckpointError naming the file for a missing, unreadable, tampered with or
    truncated checkpoint.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{config_path}: no checkpoint here (config.json missing)")
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{config_path}: not valid JSON ({error}); the checkpoint is corrupt") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT or "files" not in config:
        raise CheckpointError(f"{config_path}: not a {FORMAT} checkpoint")
    tensors = {}
    for role, entry in config["files"].items():
        path = directory / str(entry.get("name", ""))
        if not _TENSOR_FILE.match(path.name) or not path.is_file():
            raise CheckpointError(f"{path}: missing; the checkpoint is incomplete")
        data = path.read_bytes()
        if _sha256(data) != entry.get("sha256"):
            raise CheckpointError(f"{path}: checksum mismatch; the file is corrupt or was changed")
        try:
            tensors[role] = safetensors.torch.load(data)
        except Exception as error:  # safetensors raises its own error types
            raise CheckpointError(f"{path}: unreadable safetensors file ({error})") from None
    if "model" not in tensors:
        raise CheckpointError(f"{config_path}: names no model file")
    return config, tensors


def model_from(config: dict, tensors: dict, trunk: nn.Module | None, directory) -> EmbeddingModel:
    spec = dict(config["model"])
    has_trunk = spec.pop("has_trunk", False)
    if has_trunk and trunk is None:
        if not spec.get("trunk_spec"):
            raise CheckpointError(f"{directory}: the model has a trunk without a trunk_spec; pass trunk= to load_model")
        trunk = _import_trunk(spec["trunk_spec"])
    try:
        model = EmbeddingModel(trunk=trunk if has_trunk else None, **spec)
        model.load_state_dict(tensors["model"], strict=True)
    except (RuntimeError, TypeError, ValueError) as error:
        raise CheckpointError(f"{directory}: weights do not fit the model spec ({str(error).splitlines()[0]})") from None
    return model


def load_model(directory, trunk: nn.Module | None = None, device="cpu") -> EmbeddingModel:
    """Rebuild a trained model from ``directory`` (config.json + safetensors), in eval mode.

    trunk: a module of the trunk's architecture, needed when the checkpoint has a trunk but
    no ``trunk_spec``; its weights are replaced by the stored ones. The returned model has
    ``.run_config`` (method, seed, steps, history, ...).
    """
    config, tensors = read_checkpoint(directory)
    model = model_from(config, tensors, copy.deepcopy(trunk) if trunk is not None else None, directory)
    model.run_config = {k: v for k, v in config.items() if k not in ("files", "rng")}
    return model.to(device).eval()


@dataclass(frozen=True)
class Checkpointing:
    """Where and how often :func:`fit` writes a resumable checkpoint (always at the end too).

    directory: the run's folder. every: steps between checkpoints; every_s: seconds instead
    (then ``every`` is ignored). resume: continue from the checkpoint in ``directory`` (same
    method, seed, dim, steps and input shape, else CheckpointError); False starts afresh and
    overwrites it.
    """

    directory: str | os.PathLike
    every: int = 100
    every_s: float | None = None
    resume: bool = True

    def due(self, steps_done: int, seconds_since_last: float) -> bool:
        return seconds_since_last >= self.every_s if self.every_s is not None else steps_done % self.every == 0
