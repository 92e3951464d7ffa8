"""Decoding through SAM 2-style prompt heads (``sam_prompt_encoder`` + ``sam_mask_decoder`` reading two
high-resolution maps): SAM 2.1's decoder and SAM 3's interactive tracker share it, so it is family-neutral.

Only the decoder module's attributes are used: no upstream package is imported here.
"""

from __future__ import annotations

import torch
from torch import nn

from samcache.features.backend import Prompts

LOW_RES_CLAMP = 32.0  # the predictors clamp the low-res logits they return (and users feed back) to +-this


@torch.inference_mode()
def decode(decoder: nn.Module, features: dict[str, torch.Tensor], image_index: torch.Tensor,
           prompts: Prompts, multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """B prompts over (M,...) features -> low-res logits (B,C,256,256), IoU scores (B,C); C = 3 or 1.

    Prompt ``b`` decodes against image ``image_index[b]``; coordinates are in the 1024 input frame
    (``to_input_frame``). Per prompt this is ``SAM2ImagePredictor._predict``: box corners become
    points labelled 2, 3 before the clicks, and a single mask falls back to the best of three when
    unstable. Logits are unclamped; clamp to +-LOW_RES_CLAMP to feed them back as upstream does.
    Each prompt costs ~20 MB of float32 features (16 gathered + 4 of upstream's positional
    encoding copy): chunk B accordingly.
    """
    device = next(decoder.parameters()).device
    index = image_index.to(device)
    point_coords, point_labels, boxes, mask_input = (prompts.point_coords, prompts.point_labels, prompts.boxes,
                                                     prompts.mask_input)

    def gather(name: str) -> torch.Tensor:
        return features[name].to(device, torch.float32)[index]

    points = None
    if point_coords is not None:
        points = (point_coords.to(device, torch.float32), point_labels.to(device, torch.int))
    if boxes is not None:
        box_coords = boxes.to(device, torch.float32).reshape(-1, 2, 2)
        box_labels = torch.tensor([[2, 3]], dtype=torch.int, device=device).repeat(box_coords.size(0), 1)
        if points is None:
            points = (box_coords, box_labels)
        else:
            points = (torch.cat([box_coords, points[0]], dim=1), torch.cat([box_labels, points[1]], dim=1))
    masks = None if mask_input is None else mask_input.to(device, torch.float32)
    sparse, dense = decoder.sam_prompt_encoder(points=points, boxes=None, masks=masks)
    if sparse.shape[0] != index.shape[0]:
        raise ValueError(f"{index.shape[0]} image indices for {sparse.shape[0]} prompts")
    low_res, iou_scores, _, _ = decoder.sam_mask_decoder(
        image_embeddings=gather("image_embed"),
        image_pe=decoder.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=multimask,
        repeat_image=False,  # one gathered image per prompt already
        high_res_features=[gather("high_res_feats_0"), gather("high_res_feats_1")],
    )
    return low_res, iou_scores
