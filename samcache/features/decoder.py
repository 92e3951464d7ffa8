"""SAM's prompt encoder + mask decoder over cached embeddings, batched across prompts and images.

``decode`` is upstream MaskDecoder.forward/predict_masks with one change: each prompt picks its
image embedding by index (a gather) instead of ``repeat_interleave`` of a single image, so
prompts of several images share one call. For one image it computes exactly what
``SamPredictor.predict_torch`` does after ``set_image``.
"""

from __future__ import annotations

import numpy as np
import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder
from segment_anything.utils.transforms import ResizeLongestSide
from torch.nn import functional as F

from samcache.features.preprocess import IMG_SIZE

MASK_THRESHOLD = 0.0  # segment_anything.modeling.Sam.mask_threshold
_resizer = ResizeLongestSide(IMG_SIZE)


def to_input_frame(coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
    """Original-pixel [x, y] -> the 1024-frame coordinates the prompt encoder expects."""
    return _resizer.apply_coords(coords, original_size)


@torch.inference_mode()
def decode(prompt_encoder: PromptEncoder, mask_decoder: MaskDecoder, embeddings: torch.Tensor,
           image_index: torch.Tensor, point_coords: torch.Tensor | None, point_labels: torch.Tensor | None,
           boxes: torch.Tensor | None, multimask_output: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(M,256,64,64) embeddings + B prompts -> low-res logits (B,C,256,256) and IoU scores (B,C)."""
    points = (point_coords, point_labels) if point_coords is not None else None
    sparse, dense = prompt_encoder(points=points, boxes=boxes, masks=None)
    md = mask_decoder
    output_tokens = torch.cat([md.iou_token.weight, md.mask_tokens.weight], dim=0)
    output_tokens = output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
    tokens = torch.cat((output_tokens, sparse), dim=1)
    src = embeddings[image_index] + dense
    # the transformer only adds image_pe, so a batch of one broadcasts (upstream copies it per prompt)
    hs, src = md.transformer(src, prompt_encoder.get_dense_pe(), tokens)
    b, (c, h, w) = tokens.shape[0], embeddings.shape[1:]
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1: (1 + md.num_mask_tokens), :]
    src = src.transpose(1, 2).view(b, c, h, w)
    upscaled = md.output_upscaling(src)
    hyper_in = torch.stack([md.output_hypernetworks_mlps[i](mask_tokens_out[:, i, :])
                            for i in range(md.num_mask_tokens)], dim=1)
    b, c, h, w = upscaled.shape
    masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
    iou_pred = md.iou_prediction_head(iou_token_out)
    keep = slice(1, None) if multimask_output else slice(0, 1)
    return masks[:, keep], iou_pred[:, keep]


def upscale_logits(low_res: torch.Tensor, input_size: tuple[int, int], original_size: tuple[int, int]) -> torch.Tensor:
    """Sam.postprocess_masks for a batch of one image size: 1024 frame, crop padding, original size."""
    x = F.interpolate(low_res, (IMG_SIZE, IMG_SIZE), mode="bilinear", align_corners=False)
    x = x[..., : input_size[0], : input_size[1]]
    return F.interpolate(x, tuple(original_size), mode="bilinear", align_corners=False)
