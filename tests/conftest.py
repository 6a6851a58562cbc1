"""Shared fixtures. ``built_home``: a DML_HOME with the tiny profile (and the fine-tuned pair) built once per session."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def built_home(tmp_path_factory):
    """Artifacts of ``build --profile tiny_ft`` for all three tasks: the tiny profile with the fine-tuned
    pair on every task (about a minute, once)."""
    from dml_core.core.store import ArtifactStore
    from dml_core.pipeline.stages import run_build

    home = tmp_path_factory.mktemp("dml_home")
    run_build("tiny_ft", store=ArtifactStore(home), progress=False)
    return home


@pytest.fixture
def use_built_home(built_home, monkeypatch):
    """Point DML_HOME at the tiny build for code that reads it from the environment."""
    monkeypatch.setenv("DML_HOME", str(built_home))
    return built_home


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one thread avoids thread hand-off costs on a shared, loaded machine."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
