"""A compact CNN trained end to end on a task's images: the ``"cnn"`` embedder of ``methods``.

Frozen ImageNet features cap every head trained on them (BENCHMARKS.md, "Ceiling"), and
fine-tuning EfficientNet-Lite0's top stages costs minutes per model on 2 CPU cores. A small
network trained from scratch on the procedural images learns what the labels need (joint
positions, wall edges) at a fraction of that cost, given enough images: the generators make
as many as asked for, so the full profile renders an extra training split for it
(``data.E2E_SPLIT``).

Inputs are uint8 RGB images (N, S, S, 3) at ``CNN_IMAGE_SIZE`` (64 px: the task's 128-px
images reduced by 2x2 box averaging, ``downsample``), so the same function serves training,
the gallery, the queries and an uploaded image. The trunk's output (C, 4, 4) keeps coarse
spatial layout, flattened into the method's usual MLP head (``train.EmbeddingModel``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

CNN_IMAGE_SIZE = 64
#: (channels, convolutions) of the four stages, each opened by a stride-2 convolution:
#: 64 px -> 32 -> 16 -> 8 -> 4. The extra stride-1 convolutions sit where maps are small.
DEFAULT_STAGES = ((16, 1), (32, 1), (64, 2), (128, 2))
TRUNK_BUILDER = "dml_core.cnn:compact_cnn"


def downsample(images: np.ndarray, size: int = CNN_IMAGE_SIZE) -> np.ndarray:
    """uint8 (N, size, size, 3) from uint8 (N, S, S, 3) by averaging (S / size)^2 pixel blocks
    (S must be a multiple of ``size``); chunked, so memory-mapped splits stay on disk."""
    images = np.asarray(images) if not isinstance(images, np.ndarray) else images
    n, height, width = images.shape[:3]
    if height == size and width == size:
        return np.ascontiguousarray(images)
    if height != width or height % size:
        raise ValueError(f"cannot reduce {height}x{width} images to {size} px by block averaging")
    factor = height // size
    out = np.empty((n, size, size, 3), np.uint8)
    for start in range(0, n, 2048):
        block = np.asarray(images[start:start + 2048], dtype=np.float32)
        block = block.reshape(len(block), size, factor, size, factor, 3).mean(axis=(2, 4))
        out[start:start + len(block)] = np.rint(block).astype(np.uint8)
    return out


class CompactCNN(nn.Module):
    """Stages of 3x3 conv-BN-ReLU layers (the first of each with stride 2) on uint8 NHWC images
    given as float tensors in [0, 255]; returns (N, channels of the last stage, 4, 4) at 64 px."""

    def __init__(self, stages=DEFAULT_STAGES):
        super().__init__()
        layers, channels = [], 3
        for width, depth in stages:
            for index in range(depth):
                layers += [nn.Conv2d(channels, width, 3, stride=2 if index == 0 else 1, padding=1, bias=False),
                           nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                channels = width
        self.body = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2) * (1.0 / 127.5) - 1.0
        return self.body(x.contiguous(memory_format=torch.channels_last))


def compact_cnn(stages=DEFAULT_STAGES) -> CompactCNN:
    """The trunk builder named in checkpoints (``train.EmbeddingModel.trunk_spec``)."""
    return CompactCNN(tuple((int(w), int(d)) for w, d in stages))


def trunk_spec(stages=DEFAULT_STAGES) -> dict:
    return {"builder": TRUNK_BUILDER, "kwargs": {"stages": [list(stage) for stage in stages]}}
