"""The top blocks of the pretrained backbone trained with the head: the ``"top_blocks"`` embedder of ``methods``.

Frozen ImageNet features cap the heads on pose (BENCHMARKS.md, "Ceiling"); training the whole
EfficientNet-Lite0 costs far too much on 2 CPU cores. So the network is cut after block
``15 - trained_blocks``: the blocks below the cut stay frozen and their output is computed once per
image and cached by the features stage (feature mode ``split_mode(trained_blocks)``), and a
training step runs only the top ``trained_blocks`` blocks, the 1x1 head convolution and the MLP
head, on (192, 4, 4) activations of 128-px images.

BatchNorm keeps ImageNet's statistics while the weights train (``FrozenStatistics``): a batch of
128 images of one procedural task would give statistics unlike those the weights were trained with.
"""
from __future__ import annotations

from torch import nn

from dml_core.features.backbone import TRAIN_MODE, shared_backbone
from dml_core.features.efficientnet import NUM_BLOCKS, set_batchnorm_eval
from dml_core.learn.depthwise import fast_depthwise

TRUNK_BUILDER = "dml_core.learn.top_blocks:top_blocks"


def split_mode(trained_blocks: int) -> str:
    """The feature mode cached for a model that trains the top ``trained_blocks`` blocks: the output
    of the block below them (``"block14"`` for 1; ``"block15"``, the last, for 0: the head
    convolution alone trains)."""
    if not 0 <= int(trained_blocks) <= NUM_BLOCKS - 1:
        raise ValueError(f"trained_blocks must be 0..{NUM_BLOCKS - 1}, got {trained_blocks}")
    return f"block{NUM_BLOCKS - 1 - int(trained_blocks)}"


def trained_part(trained_blocks: int) -> str:
    """What a model that trains the top ``trained_blocks`` blocks trains besides its head, as tables
    name it: "head conv", "block 15 + head conv", "blocks 13-15 + head conv"."""
    first = NUM_BLOCKS - int(trained_blocks)
    if trained_blocks == 0:
        return "head conv"
    return f"block {first} + head conv" if trained_blocks == 1 else f"blocks {first}-{NUM_BLOCKS - 1} + head conv"


class FrozenStatistics(nn.Module):
    """A pretrained trunk whose BatchNorm statistics stay ImageNet's while its weights train."""

    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.trunk = trunk

    def train(self, mode: bool = True):
        super().train(mode)
        set_batchnorm_eval(self.trunk)
        return self

    def forward(self, x):
        return self.trunk(x)


def top_blocks(trained_blocks: int = 1) -> FrozenStatistics:
    """The backbone's top ``trained_blocks`` blocks and head convolution, pooled 2x2 like the heads'
    features (``TRAIN_MODE``), with ImageNet weights and the fast depthwise backward
    (``learn.depthwise``); the builder named in checkpoints."""
    _, top = shared_backbone().split(split_mode(trained_blocks), pool=TRAIN_MODE)
    return FrozenStatistics(fast_depthwise(top))


def trunk_spec(trained_blocks: int = 1) -> dict:
    return {"builder": TRUNK_BUILDER, "kwargs": {"trained_blocks": int(trained_blocks)}}
