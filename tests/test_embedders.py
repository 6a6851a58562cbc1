"""Backbones: EfficientNet-Lite0 weight parity and sanity, feature modes, split, open_clip."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from dml_core.bench.backbones import benchmark_backbone
from dml_core.core.text import offline_hub
from dml_core.features import (
    BackboneError,
    WeightsNotFoundError,
    create_backbone,
    imagenet_class_names,
    list_backbones,
    set_batchnorm_eval,
)
from dml_core.features.clip import find_checkpoint
from dml_core.features.efficientnet import (
    block_output_shape,
    create_timm_lite0,
    load_imagenet_lite0,
    reference_key_to_timm,
    reference_weights_path,
)

DAISY = 985


@pytest.fixture(scope="module")
def backbone():
    return create_backbone("efficientnet_lite0")


@pytest.fixture(scope="module")
def flower() -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image("flower.jpg")  # (427, 640, 3) uint8


def random_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# -- EfficientNet-Lite0 weights ------------------------------------------------------------
def test_key_mapping_is_a_bijection_onto_timm():
    reference = torch.load(reference_weights_path(), map_location="cpu", weights_only=True)
    timm_state = create_timm_lite0().state_dict()
    mapped = {reference_key_to_timm(k): v for k, v in reference.items()}
    assert len(mapped) == len(reference)
    assert set(mapped) == set(timm_state)
    for key, value in mapped.items():
        assert value.shape == timm_state[key].shape, key


def test_timm_model_matches_the_reference_implementation(flower, backbone):
    """Same input through the weights' own reference model and through timm: same logits.

    Checked at the native 224 px and at the 128 px the app uses (TF "SAME" padding must hold
    at any size), for the plain timm model and for the backbone's fast (BN-folded,
    channels-last) arrangement.
    """
    reference_lib = pytest.importorskip("efficientnet_lite_pytorch")
    reference = reference_lib.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=reference_weights_path()
    ).eval()
    ours = load_imagenet_lite0()
    torch.manual_seed(0)
    for resolution in (224, 128):
        fast = backbone if resolution == backbone.resolution else create_backbone("efficientnet_lite0_224")
        batch = torch.cat([fast.preprocess(flower), torch.randn(1, 3, resolution, resolution)])
        with torch.inference_mode():
            expected, got, via_backbone = reference(batch), ours(batch), fast.classify(batch)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(via_backbone, expected, atol=1e-4, rtol=1e-4)
        assert torch.equal(got.argmax(1), expected.argmax(1))
        assert torch.equal(via_backbone.argmax(1), expected.argmax(1))


def test_imagenet_class_names_are_offline_and_ordered():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[DAISY] == "daisy"
    assert names[0].startswith("tench")


def test_backbone_recognises_a_real_photo(flower):
    """flower.jpg (a daisy-like flower with a bee) is ImageNet's daisy at the native 224 px."""
    names = imagenet_class_names()
    results = {}
    for normalization in ("tf_lite", "imagenet"):
        backbone = create_backbone("efficientnet_lite0_224", normalization=normalization)
        with torch.inference_mode():
            probs = backbone.classify(backbone.preprocess(flower)).softmax(1)[0]
        results[normalization] = probs
        assert int(probs.argmax()) == DAISY, [names[i] for i in probs.topk(5).indices]
    # The weights come from TensorFlow, trained on (p - 127) / 128: more confident there.
    assert results["tf_lite"][DAISY] > results["imagenet"][DAISY]


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="not found"):
        create_backbone("efficientnet_lite0", pretrained=str(tmp_path / "nope.pth"))
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsNotFoundError, match="broken.pth"):
        create_backbone("efficientnet_lite0", pretrained=str(broken))


# -- preprocessing ---------------------------------------------------------------------------
def test_preprocess_at_native_size_is_exact_normalisation(backbone):
    images = random_images(3, 128)
    x = backbone.preprocess(images)
    assert x.shape == (3, 3, 128, 128) and x.dtype == torch.float32
    mean, std = np.array(backbone.mean), np.array(backbone.std)
    expected = ((images / 255.0 - mean) / std).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-5)


def test_preprocess_crops_to_square_and_resizes(backbone):
    # A wide image whose centre square is grey and whose side bands are red: only grey survives.
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[:, :50] = (255, 0, 0)
    image[:, 150:] = (255, 0, 0)
    image[:, 50:150] = 128
    x = backbone.preprocess(image)
    assert x.shape == (1, 3, 128, 128)
    grey = (128 / 255 - np.array(backbone.mean)) / np.array(backbone.std)
    np.testing.assert_allclose(x[0].mean(dim=(1, 2)).numpy(), grey, atol=1e-4)
    assert float(x.std()) < 1e-4


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 8, 8), np.uint8)])
def test_preprocess_rejects_bad_input(backbone, bad):
    with pytest.raises(ValueError, match="uint8 RGB"):
        backbone.preprocess(bad)


# -- feature modes and split -----------------------------------------------------------------
def test_feature_modes_have_the_declared_shapes(backbone):
    images = random_images(2, 128)
    for mode in ("pooled", "spatial2x2", "block10", "block13", "block0"):
        features = backbone.embed_images(images, mode)
        assert features.shape == (2, *backbone.feature_shape(mode)), mode
        assert np.isfinite(features).all()
    assert backbone.feature_shape("block10") == (112, 8, 8)  # DESIGN.md's cached activations
    assert block_output_shape(15, 224) == (320, 7, 7)
    with pytest.raises(ValueError, match="no feature mode"):
        backbone.feature_shape("block16")


def test_spatial2x2_cells_average_to_pooled(backbone):
    images = random_images(2, 128, seed=1)
    pooled = backbone.embed_images(images, "pooled")
    cells = backbone.embed_images(images, "spatial2x2").reshape(2, 1280, 2, 2)
    np.testing.assert_allclose(cells.mean(axis=(2, 3)), pooled, rtol=1e-5, atol=1e-5)
    assert np.abs(cells - cells.mean(axis=(2, 3), keepdims=True)).max() > 1e-3  # cells differ


@pytest.mark.parametrize(("at", "pool"), [("block10", "pooled"), ("block12", "spatial2x2"), ("block13", None)])
def test_split_top_of_bottom_equals_forward(backbone, at, pool):
    x = backbone.preprocess(random_images(2, 128, seed=2))
    bottom, top = backbone.split(at, pool=pool)
    with torch.inference_mode():
        activations = bottom(x)
        torch.testing.assert_close(activations, backbone.forward_features(x, at))
        out = top.eval()(activations)
        if pool is None:
            assert out.shape == (2, 1280, 4, 4)
        else:
            torch.testing.assert_close(out, backbone.forward_features(x, pool), atol=1e-5, rtol=1e-5)


def test_training_the_top_leaves_the_shared_backbone_alone(backbone):
    x = backbone.preprocess(random_images(4, 128, seed=3))
    before = backbone.embed_images(random_images(2, 128, seed=4))
    bottom, top = backbone.split("block13")
    assert not any(p.requires_grad for p in bottom.parameters())
    assert all(p.requires_grad for p in top.parameters())
    set_batchnorm_eval(top.train())
    optimizer = torch.optim.SGD(top.parameters(), lr=0.1)
    with torch.no_grad():
        activations = bottom(x)
    loss = top(activations).square().mean()
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in top.parameters())
    optimizer.step()
    with torch.no_grad():
        assert float(top(activations).square().mean()) < float(loss)  # it trains
    np.testing.assert_array_equal(backbone.embed_images(random_images(2, 128, seed=4)), before)


def test_split_rejects_bad_points(backbone):
    for at in ("block16", "pooled", "stage3"):
        with pytest.raises(ValueError, match="split point"):
            backbone.split(at)


# -- factory ---------------------------------------------------------------------------------
def test_factory_configs_and_overrides():
    assert "efficientnet_lite0" in list_backbones()
    small = create_backbone("efficientnet_lite0_random", resolution=64)
    assert small.resolution == 64 and small.feature_shape("block10") == (112, 4, 4)
    assert small.weights_id.startswith("random")
    assert small.cache_key != create_backbone("efficientnet_lite0", resolution=64).cache_key
    with pytest.raises(BackboneError, match="unknown backbone"):
        create_backbone("resnet9000")
    with pytest.raises(ValueError, match="normalization"):
        create_backbone("efficientnet_lite0", normalization="zscore")


def test_benchmark_returns_consistent_numbers():
    result = benchmark_backbone(
        "efficientnet_lite0_random", resolutions=(64, 128), batch_sizes=(2,), splits=("block13",),
        train_batch_size=2, image_size=64, threads=1, min_seconds=0.02, log=None,
    )
    rows = {row["resolution"]: row for row in result["extraction"]}
    assert result["matmul_gflops"] > 0 and result["cpu_matmul_gflops"] > 0
    assert all(row["images_per_s"] > 0 and row["cpu_images_per_s"] > 0 for row in rows.values())
    # Convolution FLOPs grow with the pixel count (x4 from 64 to 128 px, up to padding).
    assert 3.6 < rows[128]["gflop_per_image"] / rows[64]["gflop_per_image"] < 4.4
    (finetune,) = result["finetune"]
    assert finetune["activation_shape"] == [192, 2, 2] and finetune["fwd_bwd_images_per_s"] > 0
    json.dumps(result)  # JSON-ready


# -- open_clip -------------------------------------------------------------------------------
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A random tiny open_clip model saved as safetensors and as a torch state dict."""
    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("tiny_clip")
    config = folder / "tiny-test.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    model, _, _ = open_clip.create_model_and_transforms("tiny-test", pretrained=None)
    model.eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    weights = folder / "weights" / "open_clip_model.safetensors"
    weights.parent.mkdir()
    save_file(state, str(weights))
    torch.save(state, folder / "tiny.pth")
    return model, config, weights, folder / "tiny.pth"


@pytest.mark.parametrize("which", ["safetensors", "torch", "folder"])
def test_clip_backbone_reproduces_the_saved_model(tiny_clip, which):
    import open_clip

    model, config, weights, torch_file = tiny_clip
    pretrained = {"safetensors": weights, "torch": torch_file, "folder": weights.parent}[which]
    backbone = create_backbone("clip:tiny-test", pretrained=str(pretrained), config=str(config))
    assert backbone.name == "clip:tiny-test" and backbone.resolution == 32 and backbone.feature_dim == 32
    images = random_images(3, 48, seed=5)
    x = backbone.preprocess(images)
    assert x.shape == (3, 3, 32, 32)
    with torch.inference_mode():
        # Same weights, same maths; kernels may pick different accumulation orders: ~1e-6.
        torch.testing.assert_close(backbone.forward_features(x), model.encode_image(x), rtol=1e-5, atol=1e-5)
        texts = ["a red circle on the left", "two blue squares", ""]
        tokens = open_clip.get_tokenizer("tiny-test")(texts)
        assert tokens.shape == (3, 16)
        torch.testing.assert_close(backbone.encode_text(texts), model.encode_text(tokens), rtol=1e-5, atol=1e-5)
    normalised = backbone.embed_texts(texts, normalize=True)
    np.testing.assert_allclose(np.linalg.norm(normalised, axis=1), 1.0, rtol=1e-5)
    assert backbone.embed_images(images).shape == (3, 32)


def test_clip_without_local_weights_never_downloads(tiny_clip, tmp_path, monkeypatch):
    import open_clip.factory

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", no_download)
    monkeypatch.setattr(open_clip.factory, "download_pretrained_from_hf", no_download)
    _, config, _, _ = tiny_clip
    with pytest.raises(WeightsNotFoundError, match="no weights given"):
        create_backbone("clip:ViT-B-32")
    with pytest.raises(WeightsNotFoundError, match="not a local file"):
        create_backbone("clip:ViT-B-32", pretrained="openai")
    with pytest.raises(WeightsNotFoundError, match="missing.safetensors"):
        create_backbone("clip:ViT-B-32", pretrained=str(tmp_path / "missing.safetensors"))
    with pytest.raises(WeightsNotFoundError, match="no CLIP checkpoint"):
        create_backbone("clip:tiny-test", pretrained=str(tmp_path), config=str(config))
    with pytest.raises(BackboneError, match="unknown open_clip model"):
        create_backbone("clip:not-a-model", pretrained=str(tmp_path))
    with pytest.raises(BackboneError, match="no downloads"):
        create_backbone("clip:hf-hub:timm/some-model", pretrained=str(tmp_path))


def test_clip_weights_of_another_architecture_are_rejected(tiny_clip, tmp_path):
    _, config, weights, _ = tiny_clip
    other = dict(TINY_CLIP, embed_dim=16)
    other_config = tmp_path / "tiny-other.json"
    other_config.write_text(json.dumps(other))
    with pytest.raises(BackboneError, match="cannot load as open_clip tiny-other"):
        create_backbone("clip:tiny-other", pretrained=str(weights), config=str(other_config))


def test_find_checkpoint_prefers_open_clip_names(tmp_path):
    snapshot = tmp_path / "models--x" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_pytorch_model.bin").write_bytes(b"x")
    (snapshot / "other.pth").write_bytes(b"x")
    assert find_checkpoint(tmp_path, "m").name == "open_clip_pytorch_model.bin"


def test_hub_offline_restores_the_environment(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    before = constants.HF_HUB_OFFLINE
    with offline_hub():
        assert os.environ["HF_HUB_OFFLINE"] == "1" and constants.HF_HUB_OFFLINE is True
    assert "HF_HUB_OFFLINE" not in os.environ and constants.HF_HUB_OFFLINE == before
