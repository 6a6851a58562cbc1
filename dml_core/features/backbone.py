"""The shared frozen backbone every model's features come from, and what the heads train on."""
from __future__ import annotations

import numpy as np

from dml_core.features.factory import DEFAULT_BACKBONE

#: Features the heads train on: the 2x2-pooled last feature map keeps coarse spatial layout,
#: which pose and room layout need (DESIGN.md §3); the ImageNet baseline uses its global mean.
TRAIN_MODE = "spatial2x2"


_BACKBONES: dict = {}


def shared_backbone(name: str = DEFAULT_BACKBONE):
    """One frozen backbone per process (it holds no per-request state)."""
    if name not in _BACKBONES:
        from dml_core.features import create_backbone

        _BACKBONES[name] = create_backbone(name)
    return _BACKBONES[name]


def pooled_from_spatial(features: np.ndarray) -> np.ndarray:
    """Global-average features from 2x2 ones (channel-major (C, 2, 2)): the quadrants' mean."""
    return features.reshape(len(features), -1, 4).mean(axis=2)
