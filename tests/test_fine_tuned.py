"""The fine-tuned pair in a build: its backbone's top blocks train on cached activations that equal
recomputed ones; the models save, load and answer image queries through the catalog like the
stored embeddings say; a build of them is deterministic."""
import shutil

import numpy as np
import pytest

from dml_core.core.store import ArtifactStore
from dml_core.data.splits import load_split
from dml_core.features.backbone import shared_backbone
from dml_core.features.cache import compute_features
from dml_core.learn.methods import FINE_TUNED
from dml_core.pipeline.features import TaskFeatures
from dml_core.pipeline.plan import feature_mode, model_plan
from dml_core.pipeline.profiles import get_profile
from dml_core.serve.catalog import load_catalog

TASKS = ("pose", "layout", "caption")


def fine_tuned_ids(catalog):
    return [m for m in catalog.model_ids() if catalog.models[m].method in FINE_TUNED]


def test_every_task_of_the_build_holds_the_fine_tuned_pair_with_its_regime(built_home):
    profile = get_profile("tiny_ft")
    for task in TASKS:
        catalog = load_catalog(task, ArtifactStore(built_home))
        ids = fine_tuned_ids(catalog)
        assert sorted(catalog.models[m].method for m in ids) == sorted(FINE_TUNED)
        planned = {spec.id for spec in model_plan(profile, task)}
        assert set(ids) <= planned
        for model_id in ids:
            meta = catalog.models[model_id].meta
            assert meta["settings"]["embedder"] == profile_regime_embedder(profile, task)
            assert meta["feature_mode"] == feature_mode(meta["method"], meta["settings"]) == "block14"
            assert catalog.models[model_id].head.trunk is not None


def profile_regime_embedder(profile, task):
    from dml_core.learn.methods import FINE_TUNE_REGIMES

    return FINE_TUNE_REGIMES[profile.fine_tune_regime(task)]["embedder"]


def test_cached_activations_equal_recomputed_ones(built_home):
    store = ArtifactStore(built_home)
    data = TaskFeatures(store, "pose", progress=False)
    for split in ("train", "gallery"):
        cached = data.activations("block14", split)
        images = np.asarray(load_split(store, "pose", split).images[:16])
        recomputed = compute_features(shared_backbone(), images, mode="block14", progress=False)
        assert cached.dtype == recomputed.dtype == np.float16
        assert np.array_equal(np.asarray(cached[:16]), recomputed)


@pytest.mark.parametrize("task", TASKS)
def test_a_fine_tuned_model_answers_an_image_through_its_own_backbone_as_its_stored_embeddings_say(built_home, task):
    catalog = load_catalog(task, ArtifactStore(built_home))
    for model_id in fine_tuned_ids(catalog):
        model = catalog.models[model_id]
        for index in (0, 5):
            embedding = catalog.embed_image(np.asarray(catalog.queries.images[index]), model_id)
            assert np.allclose(embedding[0], model.query[index], atol=1e-5)
            hits, _ = catalog.hits_for_image(np.asarray(catalog.queries.images[index]), [model_id], k=5)
            stored = catalog.hits_for_query(index, [model_id], k=5)
            found, expected = [h.gallery_index for h in hits[model_id]], [h.gallery_index for h in stored[model_id]]
            distances = np.array([h.distance for h in stored[model_id]])
            # the same ranking, up to gallery images whose distances tie to float precision
            for a, b, d in zip(found, expected, distances):
                assert a == b or np.isclose(d, distances, atol=1e-5).sum() > 1


def test_a_build_of_the_fine_tuned_pair_is_deterministic(built_home, tmp_path):
    from dml_core.pipeline.stages import run_build

    again = tmp_path / "home"
    shutil.copytree(built_home, again)
    store = ArtifactStore(again)
    first = {m: store.load_array("pose", "models", m, name="gallery.npy")
             for m in store.list("pose", "models") if m.split("-")[0] in FINE_TUNED}
    assert len(first) == len(FINE_TUNED)
    for model_id in first:
        shutil.rmtree(store.path("pose", "models", model_id))
    report = run_build("tiny_ft", ("pose",), store, progress=False)  # as the first: in worker processes
    assert sorted(report["stages"]["models"]["detail"]["pose"]) == sorted(first)
    for model_id, gallery in first.items():
        assert np.array_equal(store.load_array("pose", "models", model_id, name="gallery.npy"), gallery)
