# Adapted from efficientnet-lite-pytorch 0.1.0 (github.com/ml-illustrated/EfficientNet-Lite-PyTorch),
# itself a light modification of EfficientNet-PyTorch (github.com/lukemelas/EfficientNet-PyTorch),
# both under the Apache License 2.0. Changes: only the Lite variants, no torchvision / model_zoo
# import, TF "SAME" padding computed at run time, feature maps of every block exposed, inference
# only (no drop-connect, no memory-efficient swish). Parameter names are kept so that the
# published state dicts load with ``strict=True``.
"""EfficientNet-Lite0..4 (Tan & Le 2019, the Lite variants of the TensorFlow TPU repository).

Lite differs from EfficientNet-B*: ReLU6 instead of swish, no squeeze-and-excitation, stem and
head not scaled. Shapes for Lite0 at 224 px: stem ``(N, 32, 112, 112)``; 16 MBConv blocks ending
at ``(N, 320, 7, 7)``; head ``(N, 1280, 7, 7)``; pooled ``(N, 1280)``; logits ``(N, 1000)``.

Import this module only inside a backend factory: it imports torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .fold import fold_conv_bn

# (width_coefficient, depth_coefficient, resolution, dropout) from efficientnet_lite_builder.py
LITE_PARAMS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet-lite0": (1.0, 1.0, 224, 0.2),
    "efficientnet-lite1": (1.0, 1.1, 240, 0.2),
    "efficientnet-lite2": (1.1, 1.2, 260, 0.3),
    "efficientnet-lite3": (1.2, 1.4, 280, 0.3),
    "efficientnet-lite4": (1.4, 1.8, 300, 0.3),
}


@dataclass(frozen=True)
class StageArgs:
    """One stage of MBConv blocks: ``repeats`` blocks, the first with ``stride``."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    c_in: int
    c_out: int


# 'r1_k3_s11_e1_i32_o16', 'r2_k3_s22_e6_i16_o24', ... of efficientnet_lite_builder.py
LITE_STAGES = (
    StageArgs(1, 3, 1, 1, 32, 16),
    StageArgs(2, 3, 2, 6, 16, 24),
    StageArgs(2, 5, 2, 6, 24, 40),
    StageArgs(3, 3, 2, 6, 40, 80),
    StageArgs(3, 5, 1, 6, 80, 112),
    StageArgs(4, 5, 2, 6, 112, 192),
    StageArgs(1, 3, 1, 6, 192, 320),
)

BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # PyTorch convention for TF's 0.99


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channel count scaled by ``width`` and rounded to a multiple of ``divisor`` (TF rule)."""
    if not width:
        return filters
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats)) if depth else repeats


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding (output size ``ceil(in / stride)``; the
    extra pixel of an odd padding goes right/bottom, as in TF)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, bias: bool = False):
        super().__init__(c_in, c_out, kernel, stride, padding=0, groups=groups, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        oh, ow = math.ceil(ih / sh), math.ceil(iw / sw)
        pad_h = max((oh - 1) * sh + kh - ih, 0)
        pad_w = max((ow - 1) * sw + kw - iw, 0)
        if pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation: 1x1 expand -> kxk depthwise ->
    1x1 project, ReLU6, identity skip when stride 1 and ``c_in == c_out``.
    ``(N, c_in, H, W) -> (N, c_out, ceil(H / stride), ceil(W / stride))``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        self.expand = expand
        self.skip = stride == 1 and c_in == c_out
        mid = c_in * expand
        if expand != 1:
            self._expand_conv = Conv2dSame(c_in, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel, stride=stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._project_conv = Conv2dSame(mid, c_out, 1)
        self._bn2 = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._swish = nn.ReLU6()  # name kept from the source; Lite uses ReLU6

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if self.expand != 1:
            x = self._swish(self._bn0(self._expand_conv(x)))
        x = self._swish(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.skip else x


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier with access to every block's feature map.

    ``forward(x)`` takes ``(N, 3, S, S)`` normalised RGB (S = 224 for Lite0) and returns logits
    ``(N, num_classes)``. :meth:`forward_all` also returns the feature maps;
    :meth:`fold_batchnorm` folds it for inference, in place (about twice as fast on CPU).
    """

    def __init__(self, variant: str = "efficientnet-lite0", num_classes: int = 1000):
        super().__init__()
        if variant not in LITE_PARAMS:
            raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(LITE_PARAMS)}")
        width, depth, self.image_size, _dropout = LITE_PARAMS[variant]
        self.variant = variant
        stem = 32  # Lite: stem and head are not scaled
        self._conv_stem = Conv2dSame(3, stem, 3, stride=2)
        self._bn0 = nn.BatchNorm2d(stem, eps=BN_EPS, momentum=BN_MOMENTUM)
        blocks: list[nn.Module] = []
        self.block_channels: list[int] = []
        last = len(LITE_STAGES) - 1
        for i, st in enumerate(LITE_STAGES):
            c_in = stem if i == 0 else round_filters(st.c_in, width)
            c_out = round_filters(st.c_out, width)
            reps = st.repeats if i in (0, last) else round_repeats(st.repeats, depth)
            for r in range(reps):
                blocks.append(MBConvBlock(c_in if r == 0 else c_out, c_out, st.kernel, st.stride if r == 0 else 1, st.expand))
                self.block_channels.append(c_out)
        self._blocks = nn.ModuleList(blocks)
        self.num_features = 1280
        self._conv_head = Conv2dSame(self.block_channels[-1], self.num_features, 1)
        self._bn1 = nn.BatchNorm2d(self.num_features, eps=BN_EPS, momentum=BN_MOMENTUM)
        self._fc = nn.Linear(self.num_features, num_classes)
        self._swish = nn.ReLU6()

    @property
    def num_layers(self) -> int:
        """Number of feature layers: 0 = stem, 1..B = MBConv blocks, B + 1 = head."""
        return len(self._blocks) + 2

    def layer_channels(self) -> list[int]:
        """Channels of layer 0 (stem), 1..B (blocks), B + 1 (head)."""
        return [self._conv_stem.out_channels, *self.block_channels, self.num_features]

    def forward_all(
        self, x: torch.Tensor, keep: set[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, dict[int, torch.Tensor]]:
        """Run the network once.

        Args:
            x: ``(N, 3, S, S)`` normalised images.
            keep: layer indices whose feature maps to return (see :attr:`num_layers`).

        Returns:
            ``(pooled (N, 1280), logits (N, num_classes), {layer: (N, C_l, h_l, w_l)})``;
            ``pooled`` is the global average of the head's map, before the classifier.
        """
        keep = keep or set()
        maps: dict[int, torch.Tensor] = {}
        x = self._swish(self._bn0(self._conv_stem(x)))
        if 0 in keep:
            maps[0] = x
        for i, block in enumerate(self._blocks, start=1):
            x = block(x)
            if i in keep:
                maps[i] = x
        x = self._swish(self._bn1(self._conv_head(x)))
        if len(self._blocks) + 1 in keep:
            maps[len(self._blocks) + 1] = x
        pooled = x.mean(dim=(2, 3))
        return pooled, self._fc(pooled), maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[1]

    def fold_batchnorm(self) -> "EfficientNetLite":
        """Fold every BatchNorm into the convolution before it, for inference, in place
        (:func:`~pixlink.models.arch.fold.fold_conv_bn`; the BatchNorms become identities). The
        outputs agree with the unfolded network's to float32 rounding (~1e-5 absolute on feature
        maps of magnitude ~10); with channels-last weights a CPU forward pass takes half the time.
        Load the state dict first (its keys are the unfolded network's); a network in training
        mode raises ValueError (from the first pair, before anything is folded). Returns ``self``.
        """
        pairs = [(self, "_conv_stem", "_bn0"), (self, "_conv_head", "_bn1")]
        for b in self._blocks:
            if b.expand != 1:
                pairs.append((b, "_expand_conv", "_bn0"))
            pairs += [(b, "_depthwise_conv", "_bn1"), (b, "_project_conv", "_bn2")]
        for owner, conv_name, bn_name in pairs:
            bn = getattr(owner, bn_name)
            if isinstance(bn, nn.BatchNorm2d):  # else folded already
                fold_conv_bn(getattr(owner, conv_name), bn)
                setattr(owner, bn_name, nn.Identity())
        return self
