"""Low-resolution logits to the encoder's input frame and to the original image, for any family's frame.

A family's frame is (h, w) (``Family.frame``); the image covers ``input_size`` of it (SAM 1: the
resized image, the rest is padding; squashing families: the whole frame).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def to_frame(logits: torch.Tensor, frame: tuple[int, int]) -> torch.Tensor:
    """(B,K,h,w) logits -> (B,K,*frame): the encoder's input frame, where training targets live."""
    return F.interpolate(logits, tuple(int(v) for v in frame), mode="bilinear", align_corners=False)


def to_original(logits: torch.Tensor, frame: tuple[int, int], input_size: tuple[int, int],
                original_size: tuple[int, int]) -> torch.Tensor:
    """(B,K,h,w) logits of one image size -> (B,K,H,W): frame, crop to the covered (h, w), original size.

    For SAM 1 this is ``Sam.postprocess_masks``; for squashed frames the crop keeps the whole frame.
    """
    covered = to_frame(logits, frame)[..., : int(input_size[0]), : int(input_size[1])]
    return F.interpolate(covered, tuple(int(v) for v in original_size), mode="bilinear", align_corners=False)
