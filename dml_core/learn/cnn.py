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
spatial layout, flattened into the method's usual MLP head (``learn.model.EmbeddingModel``).
"""
from __future__ import annotations

import torch
from torch import nn

CNN_IMAGE_SIZE = 64
#: (channels, convolutions) of the four stages, each opened by a stride-2 convolution:
#: 64 px -> 32 -> 16 -> 8 -> 4. The extra stride-1 convolutions sit where maps are small.
DEFAULT_STAGES = ((16, 1), (32, 1), (64, 2), (128, 2))
TRUNK_BUILDER = "dml_core.learn.cnn:compact_cnn"


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
    """The trunk builder named in checkpoints (``learn.model.EmbeddingModel.trunk_spec``)."""
    return CompactCNN(tuple((int(w), int(d)) for w, d in stages))


def trunk_spec(stages=DEFAULT_STAGES) -> dict:
    return {"builder": TRUNK_BUILDER, "kwargs": {"stages": [list(stage) for stage in stages]}}
