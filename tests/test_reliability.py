"""Reliability and security: hostile uploads, damaged artifacts, confined paths, no pickle.

The hostile corpus (``tests/hostile_corpus.py``) goes through the Upload page itself (AppTest)
and through ``python -m dml_core query``; both end in ``dml_core.serve.upload.query_with_image_bytes``.
"""
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hostile_corpus import corpus, expected_size
from streamlit.testing.v1 import AppTest

from dml_core import cli
from dml_core.core.images import UPLOAD_EXTENSIONS
from dml_core.core.store import ArtifactStore
from dml_core.core.vocabulary import BASELINE
from dml_core.learn.checkpoints import Checkpointing
from dml_core.pipeline.features import TaskFeatures
from dml_core.pipeline.models import train_model
from dml_core.pipeline.plan import ModelSpec
from dml_core.pipeline.profiles import get_profile
from dml_core.pipeline.stages import run_build
from dml_core.serve.catalog import load_catalog

ROOT = Path(__file__).resolve().parents[1]
CASES = corpus()


def test_the_corpus_is_large_and_mixed():
    assert len(CASES) >= 30
    assert sum(c.expect == "ok" for c in CASES) >= 10 and sum(c.expect != "ok" for c in CASES) >= 20
    assert len({c.name for c in CASES}) == len(CASES)


# ------------------------------------------------------------------------ hostile uploads
def test_every_hostile_file_through_the_upload_page(use_built_home):
    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    at = AppTest.from_file(str(ROOT / "pages" / "upload.py"), default_timeout=120)
    at.session_state["_keep_task"] = "pose"
    at.run()
    models = at.multiselect(key="up_models_pose").value
    for case in CASES:
        # the uploader only takes the page's extensions (the browser filters them too): others come renamed
        name = case.name if Path(case.name).suffix[1:] in UPLOAD_EXTENSIONS else f"{case.name}.png"
        at.file_uploader[0].set_value((name, case.data, "application/octet-stream")).run()
        assert not at.exception, (case.name, [e.value for e in at.exception])
        if case.expect == "ok":
            assert not at.error, (case.name, at.error[0].value)
            grids = [m.value for m in at.markdown if "bb-grid" in m.value]
            assert len(grids) == len(models), case.name
            assert len(re.findall(r'title="gallery #\d+', grids[0])) == min(at.slider(key="up_k").value, len(catalog.gallery))
        else:
            assert len(at.error) == 1, case.name
            message = at.error[0].value
            assert name in message and re.search(case.expect, message), (case.name, message)
            assert "Traceback" not in message and "\n" not in message


def test_ok_files_decode_to_the_right_image(use_built_home):
    from dml_core.serve.upload import query_with_image_bytes

    catalog = load_catalog("pose", ArtifactStore(use_built_home))
    models = catalog.model_ids(main_only=True)[:2]
    for case in (c for c in CASES if c.expect == "ok"):
        result = query_with_image_bytes(catalog, case.data, models, k=5, place_on=[])
        assert result.image.shape == (*catalog.gallery.images.shape[1:3], 3) and result.image.dtype == np.uint8
        assert all(len(hits) == 5 for hits in result.hits.values()), case.name
        if expected_size(case):
            assert result.original_size == expected_size(case), case.name


@pytest.fixture
def data_dir(tmp_path, use_built_home):
    """A folder of the user's own, outside the checkout and the artifacts."""
    directory = tmp_path / "data"
    directory.mkdir()
    assert ROOT not in directory.resolve().parents
    return directory


def test_query_cli_gives_results_or_one_line_errors(data_dir, capsys):
    for case in CASES:
        (data_dir / case.name).write_bytes(case.data)
        code = cli.main(["query", "--task", "pose", "--image", str(data_dir / case.name), "--k", "3"])
        out, err = capsys.readouterr()
        if case.expect == "ok":
            assert code == 0 and not err, (case.name, err)
            assert len(re.findall(r"#\d+ \(", out)) >= 3
        else:
            assert code == 1 and not out, case.name
            assert err.count("\n") == 1 and err.startswith("error: ") and case.name in err, err
            assert re.search(case.expect, err), (case.name, err)


def _query_process(home, data, *args, stdin=None):
    env = {"DML_HOME": str(home), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "dml_core", "query", "--task", "pose", *args], input=stdin,
                          capture_output=True, env=env, cwd=ROOT, timeout=300)


def test_query_process_exits_nonzero_without_a_traceback(built_home, data_dir):
    by_name = {c.name: c for c in CASES}
    for name in ("bomb-real-12000x12000.png", "truncated.jpg"):
        (data_dir / name).write_bytes(by_name[name].data)
        result = _query_process(built_home, data_dir, "--image", str(data_dir / name))
        stderr = result.stderr.decode()
        assert result.returncode == 1 and stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    piped = _query_process(built_home, data_dir, "--image", "-", "--json", stdin=by_name["cmyk.jpg"].data)
    assert piped.returncode == 0, piped.stderr.decode()[-500:]
    assert '"gallery_id"' in piped.stdout.decode()


def test_decoding_the_corpus_keeps_memory_bounded():
    """Peak RSS over the whole corpus, in a fresh process: bombs are refused before decoding."""
    script = (
        "import resource, sys; sys.path.insert(0, 'tests')\n"
        "from hostile_corpus import corpus\n"
        "from dml_core.core.images import ImageInputError, decode_image, to_square_array\n"
        "cases = corpus()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for case in cases:\n"
        "    try:\n"
        "        to_square_array(decode_image(case.data), 128)\n"
        "    except ImageInputError:\n"
        "        pass\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    growth_mb = int(result.stdout.strip())
    # the largest accepted image (5000 x 5000 RGB) is 75 MB decoded; a bomb would be gigabytes
    assert growth_mb < 300, growth_mb


# ------------------------------------------------------------------ the user's own paths
def test_cli_reads_and_writes_the_users_own_files_outside_the_checkout(data_dir, tmp_path, capsys, monkeypatch):
    """The CLI runs with its user's rights: a photo in /tmp, a report into a new folder there."""
    photo = data_dir / "photo.bmp"
    photo.write_bytes(next(c.data for c in CASES if c.name == "photo.bmp"))
    (data_dir / "link.bmp").symlink_to(photo)
    monkeypatch.chdir(tmp_path)
    for image in (str(photo), str(data_dir / "link.bmp"), "data/../data/photo.bmp"):
        assert cli.main(["query", "--task", "pose", "--image", image, "--k", "3"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    reports = tmp_path / "reports" / "nested"
    assert cli.main(["evaluate", "--task", "pose", "--json", str(reports / "eval.json")]) == 0
    assert '"models"' in (reports / "eval.json").read_text()
    assert cli.main(["preview", "--task", "pose", "--n", "4", "--size", "48", "--out", str(tmp_path / "sheet.png")]) == 0
    assert (tmp_path / "sheet.png").stat().st_size > 0


@pytest.mark.parametrize("argv, words", [
    (["query", "--task", "pose", "--image", "{data}/missing.png"], "no such file"),
    (["query", "--task", "pose", "--image", "{data}"], "no such file"),
    (["evaluate", "--task", "pose", "--json", "{data}"], "is a directory"),
])
def test_cli_path_mistakes_get_one_line(argv, words, data_dir, capsys):
    code = cli.main([a.replace("{data}", str(data_dir)) for a in argv])
    out, err = capsys.readouterr()
    assert code == 1 and words in err and err.count("\n") == 1, err


# -------------------------------------------------------------------- damaged artifacts
def _flip_byte(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    at = len(data) // 2 if at is None else at
    data[at] ^= 0x5A
    path.write_bytes(bytes(data))


def test_altered_or_truncated_index_projection_and_weights_are_never_loaded_and_get_rebuilt(built_home, tmp_path):
    shutil.copytree(built_home / "pose", tmp_path / "pose")
    store = ArtifactStore(tmp_path)
    healthy = load_catalog("pose", store)
    main = healthy.model_ids(main_only=True)
    trained = [m for m in main if m != BASELINE]
    index_victim, projection_victim, weights_victim = trained[:3]
    models = tmp_path / "pose" / "models"
    _flip_byte(models / index_victim / "index.faiss")  # same size: only the checksum can tell
    with open(models / projection_victim / "projection.npz", "r+b") as handle:
        handle.truncate(100)
    weights = next((models / weights_victim).glob("model-*.safetensors"))
    _flip_byte(weights, at=weights.stat().st_size - 3)

    damaged = load_catalog("pose", store)
    assert set(damaged.damaged) == {index_victim, projection_victim, weights_victim}
    assert "checksum" in damaged.damaged[index_victim] and "size" in damaged.damaged[projection_victim]
    assert set(damaged.models) == set(healthy.models) - set(damaged.damaged)

    report = run_build("tiny_ft", ("pose",), store, progress=False)  # built_home's profile
    assert set(report["stages"]["models"]["detail"]["pose"]) == {index_victim, projection_victim, weights_victim}
    rebuilt = load_catalog("pose", store)
    assert not rebuilt.damaged and set(rebuilt.models) == set(healthy.models)
    for model_id in damaged.damaged:  # training is deterministic: the same model comes back
        np.testing.assert_allclose(rebuilt.models[model_id].gallery, healthy.models[model_id].gallery, atol=1e-5)


def test_damaged_models_are_named_on_the_pages(built_home, tmp_path, monkeypatch):
    shutil.copytree(built_home / "pose", tmp_path / "pose")
    victim = "log_ratio-d128-s0"
    _flip_byte(tmp_path / "pose" / "models" / victim / "gallery.npy")
    monkeypatch.setenv("DML_HOME", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "pages" / "compare.py"), default_timeout=120).run()
    assert not at.exception
    assert any(victim in w.value and "integrity" in w.value for w in at.warning)


def test_a_damaged_training_checkpoint_is_discarded_not_resumed(built_home, tmp_path, one_torch_thread):
    from dml_core.learn.train import fit

    shutil.copytree(built_home / "pose", tmp_path / "pose", ignore=shutil.ignore_patterns("models", "runs"))
    store = ArtifactStore(tmp_path)
    profile = get_profile("tiny")
    spec = ModelSpec("log_ratio", profile.dim, 0)
    data = TaskFeatures(store, "pose", progress=False)
    run_dir = store.path("pose", "runs", spec.id)
    fit(data.features["train"], data.train.labels, method="log_ratio", dim=spec.dim, steps=profile.steps,
        checkpoint=Checkpointing(run_dir), neighbours=data.neighbours, progress=False, on_step=lambda step, loss: step < 5)
    _flip_byte(next(run_dir.glob("optimizer-*.safetensors")))
    with pytest.warns(UserWarning, match="checksum mismatch"):
        train_model(data, spec, profile, progress=False)
    fresh = store.load_array("pose", "models", spec.id, name="gallery.npy")
    reference = ArtifactStore(built_home).load_array("pose", "models", spec.id, name="gallery.npy")
    np.testing.assert_allclose(fresh, reference, atol=1e-5)


# ----------------------------------------------------------------------------- security
def test_no_pickle_anywhere_weights_load_with_safetensors_or_weights_only():
    sources = {p: p.read_text() for p in [*ROOT.glob("dml_core/**/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"]}
    for path, text in sources.items():
        assert not re.search(r"\bpickle\b|\bjoblib\b|\bdill\b", text), path
        assert "allow_pickle=True" not in text, path
        for call in re.findall(r"(?<![\w.])torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)


def test_streamlit_keeps_xsrf_protection_on_and_uploads_in_memory():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"].get("enableXsrfProtection", True) is True
    upload_page = (ROOT / "pages" / "upload.py").read_text()
    assert ".getvalue()" in upload_page and "tempfile" not in upload_page and "open(" not in upload_page
