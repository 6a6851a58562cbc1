"""The build is idempotent and survives being killed."""
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from ranking_check import assert_top_k_up_to_ties

from dml_core.core.store import ArtifactStore
from dml_core.pipeline.features import TaskFeatures
from dml_core.pipeline.models import build_models, train_model
from dml_core.pipeline.plan import ModelSpec, model_plan
from dml_core.pipeline.profiles import get_profile
from dml_core.pipeline.stages import run_build
from dml_core.pipeline.tuning import build_tuning, tuned_settings


def _all_artifacts(store):
    # os.walk, not rglob: a running build renames its temp folders meanwhile, and os.walk skips
    # a folder that vanished where rglob raises FileNotFoundError.
    for directory, _, files in os.walk(store.root):
        if "manifest.json" in files:
            yield Path(directory).relative_to(store.root).parts


def test_rerun_with_nothing_to_do_builds_nothing(built_home):
    store = ArtifactStore(built_home)
    before = {parts: store.manifest(*parts)["created"] for parts in _all_artifacts(store)}
    report = run_build("tiny_ft", store=store, progress=False)  # the profile built_home was built with
    assert all(not stage["detail"] for stage in report["stages"].values()), report["stages"]
    assert {parts: store.manifest(*parts)["created"] for parts in _all_artifacts(store)} == before
    for task in ("pose", "layout", "caption"):
        assert set(store.list(task, "models")) >= {spec.id for spec in model_plan(get_profile("tiny_ft"), task)}


def test_the_cross_modal_model_trains_on_the_caption_vectors_the_data_stage_kept(built_home):
    from dml_core.core.text import embed_sentences
    from dml_core.data.tasks.caption import CAPTION_VECTORS
    from dml_core.pipeline.features import TaskFeatures

    data = TaskFeatures(ArtifactStore(built_home), "caption", progress=False)
    kept = data.caption_embeddings()
    assert np.array_equal(kept, data.train.arrays[CAPTION_VECTORS])
    assert not ArtifactStore(built_home).path("caption", "text").exists()  # nothing embedded twice
    captions = data.train.meta["captions"]
    again = embed_sentences([c for caps in captions for c in caps]).reshape(kept.shape)
    assert (kept * again).sum(-1).min() > 0.999  # the same sentences (bf16 CPUs round by batch)


def test_build_killed_three_times_at_random_moments_resumes_and_every_artifact_verifies(tmp_path):
    """SIGKILL the build at random points of its progress (after a random number of finished
    artifacts, plus a random delay), three times; after every kill each finished artifact
    verifies, and a final rerun completes the build."""
    rng = random.Random(20261123)
    env = dict(os.environ, DML_HOME=str(tmp_path), PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "dml_core", "build", "--profile", "tiny", "--tasks", "pose"]
    store = ArtifactStore(tmp_path)
    # Three kills (five until the server's own kill-and-resume test joined it: tests/test_app_command.py)
    targets = sorted(rng.sample(range(12), 3))  # finished artifacts before each kill (the build makes ~16)
    for target in targets:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 300
        while time.time() < deadline and process.poll() is None and len(list(_all_artifacts(store))) < target:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.5))
        assert process.poll() is None, f"the build finished before kill at {target} artifacts"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for parts in _all_artifacts(store):  # what has a manifest is complete, even right after a kill
            store.verify(*parts, full=True)

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    artifacts = list(_all_artifacts(store))
    assert len(artifacts) > targets[-1]
    for parts in artifacts:
        store.verify(*parts, full=True)
    assert not list(tmp_path.rglob("*.tmp-*"))
    expected = {spec.id for spec in model_plan(get_profile("tiny"), "pose")}
    assert set(store.list("pose", "models")) == expected


def test_tuning_picks_each_methods_best_validation_setting_and_models_train_with_it(built_home, tmp_path, one_torch_thread):
    import dataclasses
    import shutil

    from dml_core.learn.methods import COMPARED, TUNING_GRIDS

    shutil.copytree(built_home / "pose", tmp_path / "pose", ignore=shutil.ignore_patterns("models", "runs"))
    store = ArtifactStore(tmp_path)
    profile = dataclasses.replace(get_profile("tiny"), tune=True, seeds=(0,), ablation_dims=())
    assert build_tuning(store, profile, ("pose",), progress=False) == ["pose"]
    assert build_tuning(store, profile, ("pose",), progress=False) == []  # done once
    tuned = store.manifest("pose", "tuning")["meta"]["methods"]
    assert set(tuned) == set(COMPARED)
    for method, result in tuned.items():
        assert len(result["scores"]) == len(TUNING_GRIDS[method]) == 4
        assert 0 < max(result["scores"]) <= 1
        assert result["scores"][result["chosen"]] == max(result["scores"])
        assert result["settings"] == TUNING_GRIDS[method][result["chosen"]]

    build_models(store, profile, ("pose",), progress=False)
    for method in COMPARED:
        meta = store.manifest("pose", "models", f"{method}-d{profile.dim}-s0")["meta"]
        assert meta["settings"] == tuned[method]["settings"]
    assert build_models(store, profile, ("pose",), progress=False) == {}  # nothing left to do
    # both fine-tuned methods train with their base method's choice, then the task's regime
    with_pair = dataclasses.replace(profile, fine_tune=(("pose", "top_3_blocks"),))
    for method, base in (("log_ratio_ft", "log_ratio"), ("binary_triplet_ft", "binary_triplet")):
        assert tuned_settings(store, "pose", with_pair, method) == {
            **tuned[base]["settings"], "embedder": "top_blocks", "trained_blocks": 3}
    # an untuned profile ignores the stored tuning
    assert tuned_settings(store, "pose", get_profile("tiny"), "log_ratio") == {}


def test_a_cnn_model_saves_loads_and_queries_through_the_catalog_like_a_head(built_home, tmp_path, one_torch_thread):
    import io
    import shutil

    import numpy as np
    from PIL import Image

    from dml_core.evaluate.ordering import QueryRef, ordering
    from dml_core.search.distances import embedding_distance
    from dml_core.serve.catalog import load_catalog
    from dml_core.serve.upload import query_with_image_bytes

    shutil.copytree(built_home / "pose", tmp_path / "pose", ignore=shutil.ignore_patterns("runs"))
    store = ArtifactStore(tmp_path)
    data = TaskFeatures(store, "pose", progress=False)
    model_id = train_model(data, ModelSpec("log_ratio_ft", 16, 0), get_profile("tiny_ft"), steps=5, progress=False,
                           embedder="cnn")  # the CNN regime on the fixture's data (built with tiny_ft)
    meta = store.manifest("pose", "models", model_id)["meta"]
    assert meta["feature_mode"] == "images64" and 0 < meta["metrics"]["ndcg@10"] <= 1

    catalog = load_catalog("pose", store)
    model = catalog.models[model_id]
    assert model.embeds_images and not catalog.damaged
    image = np.asarray(catalog.queries.images[2])
    embedding = catalog.embed_image(image, model_id)
    np.testing.assert_allclose(embedding[0], model.query[2], atol=1e-5)        # the stored query embedding, recomputed
    hits, timings = catalog.hits_for_image(image, [model_id, "log_ratio-d128-s0"], k=5)
    image_hits = hits[model_id]                 # the stored query's ranking, up to near-ties (embeddings agree to 1e-5)
    reference = embedding_distance(model.query[2:3], model.gallery, model.meta["metric"])
    assert_top_k_up_to_ties(np.array([[h.gallery_index for h in image_hits]]), np.array([[h.distance for h in image_hits]]), reference)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    upload = query_with_image_bytes(catalog, buffer.getvalue(), [model_id], k=5, place_on=[])
    assert len(upload.hits[model_id]) == 5
    assert ordering(catalog, model_id, QueryRef("query", 2), 5).top.sum() == 5
