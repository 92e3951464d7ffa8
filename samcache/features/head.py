"""The light semantic head on frozen SAM embeddings, and its mapping back to image pixels.

Conv3x3(256->C)+BN+ReLU, Conv3x3(C->C)+BN+ReLU, Conv1x1(C->classes), at 64x64. Logits are
upsampled bilinearly to the padded 1024x1024 input frame for the loss; for evaluation the
valid (h, w) region is cropped and resized to the original H x W.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from samcache.features.preprocess import IMG_SIZE


class SemanticHead(nn.Module):
    def __init__(self, num_classes: int, width: int = 256, in_channels: int = 256):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, num_classes, 1),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B,256,64,64) -> (B,classes,64,64) logits."""
        return self.layers(embeddings)


def to_frame(logits: torch.Tensor) -> torch.Tensor:
    """64x64 logits -> the padded 1024x1024 input frame."""
    return F.interpolate(logits, (IMG_SIZE, IMG_SIZE), mode="bilinear", align_corners=False)


def to_original(logits: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]) -> torch.Tensor:
    """64x64 logits of images sharing one size -> (B,classes,H,W): frame, crop padding, resize."""
    frame = to_frame(logits)[..., : input_size[0], : input_size[1]]
    return F.interpolate(frame, tuple(original_size), mode="bilinear", align_corners=False)
