"""Light semantic heads on frozen SAM features.

``SemanticHead`` (``--head main``): Conv3x3(C_in->C)+BN+ReLU, Conv3x3(C->C)+BN+ReLU,
Conv1x1(C->classes), on the main map of any family. ``MultiScaleHead`` (``--head multiscale``,
families with high-resolution maps): a small top-down fusion of the coarse map with the finer
ones, classified at the finest resolution. Input channels come from the family's descriptor.
Logits are upsampled bilinearly to the family's input frame for the loss (``to_frame``); for
evaluation they go through the same post-processing as SAM's masks (``to_original``: frame,
crop the padding, original H x W).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from samcache.errors import SamcacheError



def _conv_bn_relu(c_in: int, c_out: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class SemanticHead(nn.Module):
    def __init__(self, num_classes: int, width: int = 256, in_channels: int = 256):
        """``in_channels``: of the family's main map (256 for SAM 1 and 2.1)."""
        super().__init__()
        self.layers = nn.Sequential(_conv_bn_relu(in_channels, width), _conv_bn_relu(width, width),
                                    nn.Conv2d(width, num_classes, 1))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B,C_in,h,w) -> (B,classes,h,w) logits."""
        return self.layers(embeddings)


class MultiScaleHead(nn.Module):
    """Top-down fusion of maps ordered coarse to fine (SAM 2.1: (256,64,64), (64,128,128), (32,256,256))
    -> (B,classes,h,w) logits at the finest map's resolution."""

    def __init__(self, num_classes: int, width: int = 128, channels: tuple[int, ...] = (256, 64, 32)):
        super().__init__()
        self.lateral = nn.ModuleList(_conv_bn_relu(c, width, 1) for c in channels)
        self.smooth = _conv_bn_relu(width, width)
        self.classify = nn.Conv2d(width, num_classes, 1)

    def forward(self, *maps: torch.Tensor) -> torch.Tensor:
        x = self.lateral[0](maps[0])
        for lateral, finer in zip(self.lateral[1:], maps[1:]):
            x = F.interpolate(x, size=finer.shape[-2:], mode="bilinear", align_corners=False) + lateral(finer)
        return self.classify(self.smooth(x))


def build_head(kind: str, num_classes: int, width: int, channels: tuple[int, ...] = (256,)) -> nn.Module:
    """``channels``: input channels of the maps the head reads, coarse to fine (``head_features`` order)."""
    if kind == "main":
        return SemanticHead(num_classes, width, channels[0])
    return MultiScaleHead(num_classes, width, tuple(channels))


def head_features(kind: str, cache_features: dict[str, tuple], main_feature: str) -> tuple[str, ...]:
    """The cache arrays a head reads, coarse to fine; multiscale needs a family with high-res maps."""
    if kind == "main":
        return (main_feature,)
    ordered = sorted(cache_features, key=lambda n: cache_features[n][-1])  # by resolution
    if len(ordered) < 2:
        raise SamcacheError("a multiscale head needs a cache with high-resolution features (SAM 2.1); this one "
                            f"holds only {', '.join(cache_features)}")
    return tuple(ordered)
