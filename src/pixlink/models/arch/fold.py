"""Fold a BatchNorm into the convolution before it, for inference.

In eval mode a BatchNorm is a per-channel affine map, ``y = g (x - m) / sqrt(v + eps) + b``, so
``BN(conv(x))`` is one convolution with weights ``w g / sqrt(v + eps)`` and bias
``(c - m) g / sqrt(v + eps) + b`` (``c`` the convolution's own bias, or 0). On CPU each BatchNorm
is a full pass over its feature map, so a network of small convolutions runs markedly faster
folded; the outputs agree to float32 rounding. The running statistics are gone: not for training.
"""

from __future__ import annotations

import torch
from torch import nn


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` (eval mode) into ``conv`` in place; the caller replaces ``bn`` by an identity."""
    if bn.training:
        raise ValueError("a BatchNorm in training mode is not folded: call .eval() first")
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
        bias = bn.bias - bn.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        conv.bias = nn.Parameter(bias.clone(), requires_grad=False)
