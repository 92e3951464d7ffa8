"""SamPredictor.set_image's preprocessing, split so that workers and the device share it.

Upstream: ResizeLongestSide(1024) on the uint8 image (PIL bilinear), then
``(x - pixel_mean) / pixel_std``, then zero-pad bottom/right to 1024x1024.
Here DataLoader workers do the resize and pad the *uint8* image (cheap to ship);
``normalize_padded`` on the device applies the same float ops and zeroes the padding,
which gives the same values bit for bit. The constants are read from upstream's Sam.
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from samcache.features.frames import to_original
from samcache.features.sam1 import SAM

IMG_SIZE = SAM.frame[0]  # segment_anything.build_sam's image_size for every official model
_sam_defaults = inspect.signature(Sam.__init__).parameters
PIXEL_MEAN = tuple(float(v) for v in _sam_defaults["pixel_mean"].default)
PIXEL_STD = tuple(float(v) for v in _sam_defaults["pixel_std"].default)
_resizer = ResizeLongestSide(IMG_SIZE)  # the one instance: images, coordinates and boxes


def input_size(original_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) after ResizeLongestSide for an (H, W) image."""
    return tuple(ResizeLongestSide.get_preprocess_shape(original_size[0], original_size[1], IMG_SIZE))


def resize_and_pad_uint8(image: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
    """HxWx3 uint8 -> (3x1024x1024 uint8 zero-padded, (h, w) of the resized image)."""
    resized = _resizer.apply_image(image)
    h, w = resized.shape[:2]
    padded = torch.zeros((3, IMG_SIZE, IMG_SIZE), dtype=torch.uint8)
    padded[:, :h, :w] = torch.from_numpy(resized).permute(2, 0, 1)
    return padded, (h, w)


def normalize_padded(images_uint8: torch.Tensor, input_sizes: torch.Tensor) -> torch.Tensor:
    """(B,3,S,S) uint8 + (B,2) sizes -> float32 normalized, exactly zero outside each (h, w)."""
    mean = torch.tensor(PIXEL_MEAN, device=images_uint8.device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=images_uint8.device).view(1, 3, 1, 1)
    x = (images_uint8.float() - mean) / std
    rows = torch.arange(IMG_SIZE, device=x.device)
    sizes = input_sizes.to(x.device)
    valid = (rows.view(1, -1, 1) < sizes[:, 0].view(-1, 1, 1)) & (rows.view(1, 1, -1) < sizes[:, 1].view(-1, 1, 1))
    return x * valid.unsqueeze(1)


def to_input_frame(coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """Original-pixel [x, y] (any leading shape) -> the 1024-frame coordinates the prompt encoder expects."""
    return _resizer.apply_coords(coords, original_size)


def postprocess_logits(logits: torch.Tensor, input_size: tuple[int, int],
                       original_size: tuple[int, int]) -> torch.Tensor:
    """Sam.postprocess_masks for a batch of one image size: (B,C,256,256) -> 1024 frame, crop the padding,
    (B,C,H,W) at the original size."""
    return to_original(logits, (IMG_SIZE, IMG_SIZE), input_size, original_size)
