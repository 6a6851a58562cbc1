"""Batched feature extraction and its verified disk cache."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from dml_core.features import cache as features_module, create_backbone, extract_features, fingerprint_images
from dml_core.features.cache import cache_paths, compute_feature_modes, compute_features, extract_feature_modes


@pytest.fixture(scope="module")
def backbone():
    # Random weights at 64 px: the cache logic does not depend on what the numbers mean.
    return create_backbone("efficientnet_lite0_random", resolution=64)


@pytest.fixture()
def images():
    return np.random.default_rng(0).integers(0, 256, (10, 64, 64, 3), dtype=np.uint8)


def forbid_compute(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("features were recomputed")

    monkeypatch.setattr(features_module, "compute_feature_modes", fail)


def test_batches_match_one_big_batch_and_report_progress(backbone, images):
    calls = []
    batched = extract_features(backbone, images, batch_size=4, progress=False, callback=lambda d, t: calls.append((d, t)))
    whole = backbone.embed_images(images)
    np.testing.assert_allclose(batched, whole, rtol=1e-4, atol=1e-5)
    assert batched.dtype == np.float32 and batched.shape == (10, 1280)
    assert calls == [(4, 10), (8, 10), (10, 10)]


def test_several_modes_in_one_pass_equal_each_mode_alone(backbone, images):
    together = compute_feature_modes(backbone, images, ("spatial2x2", "block10", "pooled"), progress=False)
    for mode, features in together.items():
        assert np.array_equal(features, compute_features(backbone, images, mode, progress=False)), mode


def test_modes_are_cached_apart_and_only_the_missing_ones_computed(backbone, images, tmp_path, monkeypatch):
    computed = []

    def compute(images, modes):
        computed.append(modes)
        return compute_feature_modes(backbone, images, modes, progress=False)

    first = extract_feature_modes(backbone, images, ("spatial2x2",), cache_dir=tmp_path, compute=compute)
    both = extract_feature_modes(backbone, images, ("spatial2x2", "block10"), cache_dir=tmp_path, compute=compute)
    assert computed == [("spatial2x2",), ("block10",)]
    assert np.array_equal(both["spatial2x2"], first["spatial2x2"])
    forbid_compute(monkeypatch)
    alone = extract_features(backbone, images, mode="block10", cache_dir=tmp_path, progress=False)
    assert np.array_equal(alone, both["block10"]) and alone.dtype == np.float16


def test_block_activations_are_float16(backbone, images):
    acts = extract_features(backbone, images[:3], mode="block10", progress=False)
    assert acts.dtype == np.float16 and acts.shape == (3, 112, 4, 4)
    exact = backbone.embed_images(images[:3], "block10")
    np.testing.assert_allclose(acts.astype(np.float32), exact, rtol=2e-3, atol=2e-3)


def test_cache_hit_returns_identical_features_without_computing(backbone, images, tmp_path, monkeypatch):
    first = extract_features(backbone, images, mode="spatial2x2", cache_dir=tmp_path, progress=False)
    forbid_compute(monkeypatch)
    calls = []
    second = extract_features(
        backbone, images, mode="spatial2x2", cache_dir=tmp_path, progress=False, callback=lambda d, t: calls.append((d, t))
    )
    np.testing.assert_array_equal(first, second)
    assert calls == [(10, 10)]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp files left


def test_cache_key_covers_data_mode_and_backbone(backbone, images, tmp_path):
    extract_features(backbone, images, cache_dir=tmp_path, progress=False)
    changed = images.copy()
    changed[3, 5, 5, 1] ^= 1  # one bit of one pixel
    assert fingerprint_images(changed) != fingerprint_images(images)
    extract_features(backbone, changed, cache_dir=tmp_path, progress=False)
    extract_features(backbone, images, mode="spatial2x2", cache_dir=tmp_path, progress=False)
    other = create_backbone("efficientnet_lite0_random", resolution=96)
    extract_features(other, images, cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("*.npy"))) == 4
    assert len(list(tmp_path.glob("*.npy.json"))) == 4


@pytest.mark.parametrize("damage", ["truncate", "flip", "no_sidecar", "bad_sidecar", "stale_sidecar"])
def test_damaged_cache_is_detected_and_recomputed(backbone, images, tmp_path, damage):
    good = extract_features(backbone, images, cache_dir=tmp_path, progress=False)
    array_path, sidecar_path = cache_paths(tmp_path, backbone, "pooled", fingerprint_images(images))
    raw = array_path.read_bytes()
    if damage == "truncate":
        array_path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":  # same size, one changed byte in the data: only the checksum sees it
        array_path.write_bytes(raw[:-7] + bytes([raw[-7] ^ 0xFF]) + raw[-6:])
    elif damage == "no_sidecar":
        sidecar_path.unlink()
    elif damage == "bad_sidecar":
        sidecar_path.write_text("{not json")
    else:
        meta = json.loads(sidecar_path.read_text())
        meta["mode"] = "spatial2x2"
        sidecar_path.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="corrupt or stale feature cache"):
        again = extract_features(backbone, images, cache_dir=tmp_path, progress=False)
    np.testing.assert_allclose(again, good, rtol=1e-6, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: the next load is clean
        np.testing.assert_array_equal(extract_features(backbone, images, cache_dir=tmp_path, progress=False), again)


def test_cache_refuses_pickles(backbone, images, tmp_path):
    extract_features(backbone, images, cache_dir=tmp_path, progress=False)
    array_path, _ = cache_paths(tmp_path, backbone, "pooled", fingerprint_images(images))
    np.save(array_path, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with pytest.warns(UserWarning, match="corrupt or stale"):
        extract_features(backbone, images, cache_dir=tmp_path, progress=False)


def test_bad_arguments_are_clear_errors(backbone, images):
    with pytest.raises(ValueError, match="no feature mode"):
        extract_features(backbone, images, mode="block99", progress=False)
    with pytest.raises(ValueError, match="uint8 RGB"):
        extract_features(backbone, images.astype(np.float32), progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(backbone, images, batch_size=0, progress=False)


def test_empty_input(backbone):
    empty = np.zeros((0, 64, 64, 3), dtype=np.uint8)
    assert extract_features(backbone, empty, progress=False).shape == (0, 1280)
