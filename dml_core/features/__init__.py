"""Features: pretrained backbones (offline ImageNet EfficientNet-Lite0, open_clip from local weights),
the shared frozen backbone and the feature cache.

Public API:
    create_backbone(name="efficientnet_lite0", **overrides) -> Backbone
    extract_features(backbone, images, mode="pooled", cache_dir=None, batch_size=64,
                     progress=True, callback=None) -> np.ndarray
"""
from __future__ import annotations

from dml_core.features.base import (
    MODE_POOLED,
    MODE_SPATIAL2X2,
    Backbone,
    BackboneError,
    WeightsNotFoundError,
    parse_block_mode,
    pool_feature_map,
)
from dml_core.features.cache import compute_features, extract_features, feature_dtype, fingerprint_images
from dml_core.features.efficientnet import (
    DEFAULT_SPLIT,
    EfficientNetLite0Backbone,
    block_output_shape,
    imagenet_class_names,
    set_batchnorm_eval,
)
from dml_core.features.factory import (
    BACKBONE_CONFIGS,
    DEFAULT_BACKBONE,
    create_backbone,
    list_backbones,
    register_backbone,
)

__all__ = [
    "BACKBONE_CONFIGS",
    "DEFAULT_BACKBONE",
    "DEFAULT_SPLIT",
    "MODE_POOLED",
    "MODE_SPATIAL2X2",
    "Backbone",
    "BackboneError",
    "EfficientNetLite0Backbone",
    "WeightsNotFoundError",
    "block_output_shape",
    "compute_features",
    "create_backbone",
    "extract_features",
    "feature_dtype",
    "fingerprint_images",
    "imagenet_class_names",
    "list_backbones",
    "parse_block_mode",
    "pool_feature_map",
    "register_backbone",
    "set_batchnorm_eval",
]
