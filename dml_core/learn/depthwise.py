"""A depthwise convolution whose backward pass is two ordinary convolutions, for the CPU.

PyTorch's CPU backward of a depthwise convolution is slow on the small maps the top blocks train
on: for (128, 1152, 4, 4) activations and a 5x5 kernel it took ~280 ms against 11 ms forward
(2-core EPYC, one thread). The same gradients come from convolutions that run near the forward's
speed, which cut a training step of blocks 13-15 (batch 128) from ~1.24 s to ~1.0 s; the top block
alone, with its 3x3 kernel, gains nothing measurable:

* input: the gradient convolved with the kernel flipped (a stride-1, "same"-padded convolution is
  its own transpose up to the flip);
* weight: a correlation of every (image, channel) pair of input and gradient, run as one grouped
  convolution with the batch folded into the channels, summed over the batch.

Both are exact, deterministic convolutions; they add in another order than PyTorch's own backward
(differences ~1e-7 relative). ``fast_depthwise`` swaps the class of the stride-1 depthwise layers
of a module in place: parameters, names and checkpoints stay those of ``nn.Conv2d``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _DepthwiseConvolution(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, padding: int):
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, padding=padding, groups=weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        padding, channels, kernel = ctx.padding, weight.shape[0], weight.shape[-1]
        grad = grad.contiguous()
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad, weight.flip(-1, -2), padding=padding, groups=channels)
        if ctx.needs_input_grad[1]:
            n, _, h, w = x.shape
            pairs = x.transpose(0, 1).reshape(1, channels * n, h, w)
            kernels = grad.transpose(0, 1).reshape(channels * n, 1, *grad.shape[2:])
            grad_weight = F.conv2d(pairs, kernels, padding=padding, groups=channels * n)
            grad_weight = grad_weight.view(channels, n, kernel, kernel).sum(1, keepdim=True)
        return grad_x, grad_weight, None


class FastDepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` for stride-1, odd square, "same"-padded depthwise layers without bias, with the
    backward of the module doc; any other configuration runs ``nn.Conv2d``'s own."""

    def forward(self, x):
        if not supported(self):
            return super().forward(x)
        return _DepthwiseConvolution.apply(x, self.weight, self.padding[0])


def supported(conv: nn.Conv2d) -> bool:
    k = conv.kernel_size
    return (conv.groups == conv.in_channels == conv.out_channels and conv.bias is None and k[0] == k[1] and k[0] % 2 == 1
            and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.padding == (k[0] // 2, k[0] // 2)
            and conv.padding_mode == "zeros")


def fast_depthwise(module: nn.Module) -> nn.Module:
    """Give ``module``'s supported depthwise convolutions the fast backward, in place; returns it."""
    for layer in module.modules():
        if type(layer) is nn.Conv2d and supported(layer):
            layer.__class__ = FastDepthwiseConv2d
    return module
