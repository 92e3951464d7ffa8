"""SAM's prompt encoder + mask decoder over cached embeddings, batched across prompts and images.

``decode`` is upstream MaskDecoder.forward/predict_masks with one change: each prompt picks its
image embedding by index (a gather) instead of ``repeat_interleave`` of a single image, so
prompts of several images share one call. For one image it computes exactly what
``SamPredictor.predict_torch`` does after ``set_image``.
"""

from __future__ import annotations

import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder, Sam

MASK_THRESHOLD = Sam.mask_threshold
# which of SAM's masks a prompt keeps: its own top score, the best against ground truth (the SAM
# paper's oracle, labelled ORACLE in every output), or a single mask (multimask_output=False)
MULTIMASK_MODES = ("best-score", "oracle", "single")


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

