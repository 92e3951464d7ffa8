"""The light semantic head on frozen SAM embeddings.

Conv3x3(256->C)+BN+ReLU, Conv3x3(C->C)+BN+ReLU, Conv1x1(C->classes), at 64x64. Logits are
upsampled bilinearly to the padded 1024x1024 input frame for the loss
(``preprocess.to_frame``); for evaluation they go through the same post-processing as SAM's
masks (``preprocess.postprocess_logits``: frame, crop the padding, original H x W).
"""

from __future__ import annotations

import torch
from torch import nn


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

