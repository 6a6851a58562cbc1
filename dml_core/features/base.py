"""The interface every pretrained backbone offers: preprocessing, feature modes, cache identity.

A backbone is frozen: it maps uint8 images to features. Training happens on heads above it
(or on copies of its top stages, see ``EfficientNetLite0Backbone.split``), never on it, so one
instance can be shared by every page and every model.
"""
from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Global average of the last feature map: (N, C).
MODE_POOLED = "pooled"
#: 2x2 average pooling of the last feature map, flattened channel-major: (N, 4 C).
MODE_SPATIAL2X2 = "spatial2x2"
_BLOCK_MODE = re.compile(r"^block(\d+)$")


class BackboneError(RuntimeError):
    """A backbone cannot be built or used as asked; the message says what to change."""


class WeightsNotFoundError(BackboneError, FileNotFoundError):
    """Pretrained weights are not on this machine (nothing is ever downloaded)."""


def parse_block_mode(mode: str) -> int | None:
    """``"block10"`` -> 10; any other mode -> None."""
    match = _BLOCK_MODE.match(mode)
    return int(match.group(1)) if match else None


def pool_feature_map(feature_map: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool a (N, C, h, w) map into flat features.

    ``"pooled"``: mean over h and w -> (N, C).
    ``"spatial2x2"``: ``adaptive_avg_pool2d`` to 2x2, flattened as (C, 2, 2) -> (N, 4 C);
    keeps coarse layout (left/right, top/bottom), which pose and room layout need.
    """
    if mode == MODE_POOLED:
        return feature_map.mean(dim=(2, 3))
    if mode == MODE_SPATIAL2X2:
        return F.adaptive_avg_pool2d(feature_map, 2).flatten(1)
    raise ValueError(f"cannot pool a feature map with mode {mode!r}; use 'pooled' or 'spatial2x2'")


class Backbone(nn.Module):
    """A frozen, pretrained image encoder.

    Attributes:
        name: registry name (``create_backbone(name)`` rebuilds it).
        resolution: side of the square input in pixels.
        mean, std: per-channel normalisation applied to pixel values in [0, 1].
        interpolation: ``"bilinear"`` or ``"bicubic"``, used when images are resized.
        feature_dim: size of the ``"pooled"`` features.
        feature_modes: modes ``forward_features`` accepts.
        weights_id: identifies the weights; part of ``cache_key`` so that features from
            different checkpoints never share a cache entry.
    """

    name: str
    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    feature_dim: int
    feature_modes: tuple[str, ...] = (MODE_POOLED,)
    weights_id: str = "random"

    # -- preprocessing --------------------------------------------------------------------
    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """uint8 RGB images (N, H, W, 3) or one image (H, W, 3) -> float32 (N, 3, r, r).

        Non-square images are centre-cropped to a square (the shorter side) first, so the
        aspect ratio is kept; then resized to ``resolution`` with antialiasing when shrinking
        (skipped when the size already matches) and normalised:
        ``x = (pixel / 255 - mean) / std`` per channel. The tensor lands on the backbone's
        device.
        """
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[None]
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"{self.name}: expected uint8 RGB images (N, H, W, 3), got {images.dtype} {images.shape}"
            )
        height, width = images.shape[1:3]
        if height != width:
            side = min(height, width)
            top, left = (height - side) // 2, (width - side) // 2
            images = images[:, top : top + side, left : left + side]
        x = torch.from_numpy(np.require(images, requirements=("C", "W"))).to(self.device)  # memmaps are read-only
        x = x.permute(0, 3, 1, 2).float()
        if x.shape[-1] != self.resolution:
            x = F.interpolate(
                x,
                size=(self.resolution, self.resolution),
                mode=self.interpolation,
                antialias=x.shape[-1] > self.resolution,
                align_corners=False,
            ).clamp_(0.0, 255.0)  # bicubic overshoots
        # (p / 255 - mean) / std folded into one multiply-add.
        scale = torch.tensor([1.0 / (255.0 * s) for s in self.std], device=x.device).view(1, 3, 1, 1)
        shift = torch.tensor([-m / s for m, s in zip(self.mean, self.std)], device=x.device).view(1, 3, 1, 1)
        return (x * scale + shift).contiguous()

    # -- features -------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor, mode: str = MODE_POOLED) -> torch.Tensor:
        """Preprocessed images (N, 3, r, r) -> features; shape given by ``feature_shape(mode)``."""
        raise NotImplementedError

    def forward_feature_modes(self, x: torch.Tensor, modes: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """``{mode: forward_features(x, mode)}`` for several modes; backbones that can override it
        with one pass through the network."""
        return {mode: self.forward_features(x, mode) for mode in modes}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x, MODE_POOLED)

    def feature_shape(self, mode: str = MODE_POOLED) -> tuple[int, ...]:
        """Shape of one image's features in ``mode`` (without the batch dimension)."""
        self.check_mode(mode)
        return (self.feature_dim,)

    def check_mode(self, mode: str) -> None:
        if mode not in self.feature_modes:
            raise ValueError(f"{self.name} has no feature mode {mode!r}; choose from {', '.join(self.feature_modes)}")

    @torch.inference_mode()
    def embed_images(self, images: np.ndarray, mode: str = MODE_POOLED) -> np.ndarray:
        """uint8 images -> numpy features in one call (no batching, no cache: for queries)."""
        self.eval()
        return self.forward_features(self.preprocess(images), mode).float().cpu().numpy()

    # -- identity -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        return torch.device("cpu")

    @property
    def cache_key(self) -> str:
        """File-name-safe identity of (architecture, weights, resolution, normalisation)."""
        raw = f"{self.name}-{self.weights_id}-r{self.resolution}"
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", raw)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, resolution={self.resolution}, feature_dim={self.feature_dim}"
