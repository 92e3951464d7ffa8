"""Semantic Segment Anything's refinement: SAM's masks vote with a semantic model's prediction.

Each mask takes the class most of the prediction's pixels inside it have (ties: the lower class index), and
paints it over the mask, mask after mask in the generator's order (upstream orders them by predicted IoU,
so where masks overlap the later, lower-scored one wins, as SSA's loop does); pixels outside every mask keep
the prediction's class. The votes are counted against the original prediction, never the painted map.
"""

from __future__ import annotations

import torch

VOTE_CHUNK = 16  # masks counted per matrix product (16 x 2048 x 1024 float32: 128 MiB)


def refine_by_masks(pred: torch.Tensor, masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(H,W) class indices + (K,H,W) bool masks in the generator's order -> (H,W) refined class indices.

    Votes are matrix products (masks, H*W) x (H*W, classes), VOTE_CHUNK masks at a time; counts stay exact in
    float32 up to 2^24 pixels a mask, more than a 2048x1024 image has."""
    k = len(masks)
    if k == 0:
        return pred.clone()
    one_hot = torch.nn.functional.one_hot(pred.reshape(-1).long(), num_classes).float()
    votes = torch.cat([masks[s: s + VOTE_CHUNK].reshape(-1, one_hot.shape[0]).float() @ one_hot
                       for s in range(0, k, VOTE_CHUNK)])  # (K, classes)
    winner = votes.argmax(dim=1).to(pred.dtype)  # the first of equal maxima: the lower class index
    last = k - 1 - masks.flip(0).to(torch.uint8).argmax(dim=0)  # the last mask covering each pixel
    return torch.where(masks.any(dim=0), winner[last], pred)
