"""The depthwise convolution with a backward of two ordinary convolutions (learn.depthwise)."""
import pytest
import torch
from torch import nn

from dml_core.learn.depthwise import FastDepthwiseConv2d, fast_depthwise
from dml_core.learn.top_blocks import top_blocks


@pytest.mark.parametrize("kernel", [3, 5])
def test_gradients_equal_pytorchs_own(kernel):
    torch.manual_seed(0)
    native = nn.Conv2d(24, 24, kernel, padding=kernel // 2, groups=24, bias=False).double()
    fast = fast_depthwise(nn.Sequential(nn.Conv2d(24, 24, kernel, padding=kernel // 2, groups=24, bias=False)))[0].double()
    fast.load_state_dict(native.state_dict())
    assert type(fast) is FastDepthwiseConv2d
    x = torch.randn(6, 24, 4, 4, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(6, 24, 4, 4, dtype=torch.float64)
    grads = []
    for conv in (native, fast):
        out = conv(x)
        grads.append((out, *torch.autograd.grad(out, (x, conv.weight), upstream)))
    for ours, theirs in zip(grads[1], grads[0]):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_only_stride_one_same_padded_depthwise_layers_change():
    layers = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # changes
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False),
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=True),
        nn.Conv2d(8, 16, 1, bias=False),
        nn.Conv2d(16, 16, 5, padding=1, groups=16, bias=False),  # not "same" padded
    )
    fast_depthwise(layers)
    assert [type(layer) is FastDepthwiseConv2d for layer in layers] == [True, False, False, False, False]


def test_the_top_blocks_keep_their_parameters_and_forward():
    fast = top_blocks(3)
    assert sum(type(m) is FastDepthwiseConv2d for m in fast.modules()) == 3
    native = top_blocks(3)
    for layer in native.modules():
        if type(layer) is FastDepthwiseConv2d:
            layer.__class__ = nn.Conv2d
    assert list(fast.state_dict()) == list(native.state_dict())
    x = torch.randn(4, 192, 4, 4)
    fast.eval(), native.eval()
    with torch.no_grad():
        assert torch.equal(fast(x), native(x))
