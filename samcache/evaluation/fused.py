"""The fused composition of text-prompt outputs (``--compose fused``, SegEarth-OV3's rule for SAM 3).

Per phrase p at each pixel x, with the phrase's presence score pi_p, its instances q (mask logits l_q,
score s_q) kept when s_q x pi_p >= ``score_threshold``, and its semantic logits S_p, both upsampled
bilinearly to the image:

    F_p(x) = pi_p^[presence] * max( [instances] max_q sigmoid(l_q(x)) * s_q , [semantic] sigmoid(S_p(x)) )

A class's score is the maximum over its phrases; a pixel takes the class of the highest score (the first
class on ties), or is unlabeled when that score is below ``threshold`` (SegEarth-OV3's ``prob_thd``, 0 there:
every pixel is labelled). The bracketed terms are settings: each can be switched off, so that the rule's
parts can be measured one at a time (SegEarth-OV3's use_presence_score / use_transformer_decoder /
use_sem_seg). SegEarth-OV3 keeps instances from a confidence of 0.3 on Cityscapes; upstream's default is 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from samcache.data.labels import IGNORE
from samcache.errors import SamcacheError


@dataclass(frozen=True)
class FusedComposition:
    score_threshold: float = 0.5  # presence x score of the instances the instance term takes
    presence: bool = True  # multiply each phrase's map by its presence score
    instances: bool = True  # the instance term: max over kept instances of mask probability x score
    semantic: bool = True  # the semantic term: the semantic head's sigmoid
    threshold: float = 0.0  # pixels whose best class score is below this are unlabeled

    def __post_init__(self):
        for name in ("score_threshold", "threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SamcacheError(f"fused {name.replace('_', ' ')} must be in [0, 1], got {getattr(self, name)}")
        if not (self.instances or self.semantic):
            raise SamcacheError("--compose fused needs the instance term or the semantic term (or both): "
                                "--no-fused-instances and --no-fused-semantic leave nothing to fuse")


def _upsample(logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(k,h,w) logits -> (k,H,W) probabilities (bilinear on the logits, then sigmoid, as Sam3Processor)."""
    return torch.nn.functional.interpolate(logits[:, None].float(), tuple(size), mode="bilinear",
                                           align_corners=False)[:, 0].sigmoid()


def phrase_map_scores(result, size: tuple[int, int], rule: FusedComposition, chunk: int) -> torch.Tensor:
    """One phrase's grounding result (``features.backend.TextResult``) -> its (H,W) fused map F_p."""
    device = result.semantic_logits.device
    term = torch.zeros(size, dtype=torch.float32, device=device)
    if rule.instances:
        keep = torch.nonzero(result.scores * result.presence >= rule.score_threshold).flatten()
        for start in range(0, len(keep), chunk):
            part = keep[start:start + chunk]
            probs = _upsample(result.mask_logits[part], size) * result.scores[part].float()[:, None, None]
            term = torch.maximum(term, probs.amax(0))
    if rule.semantic:
        term = torch.maximum(term, _upsample(result.semantic_logits[None], size)[0])
    return term * float(result.presence) if rule.presence else term


def compose_fused(results: list, classes: list[int], size: tuple[int, int], rule: FusedComposition, chunk: int,
                  none: int = IGNORE) -> torch.Tensor:
    """One image's P grounding results with their (P,) class indices -> (H,W) long label map."""
    if not results:
        raise SamcacheError("no text prompts given (the phrase list is empty)")
    unique = sorted(set(classes))
    scores = torch.zeros((len(unique), *size), dtype=torch.float32, device=results[0].semantic_logits.device)
    for result, c in zip(results, classes):
        k = unique.index(c)
        scores[k] = torch.maximum(scores[k], phrase_map_scores(result, size, rule, chunk))
    best = scores.amax(0)
    order = torch.arange(len(unique), device=scores.device)[:, None, None].expand_as(scores)
    first = torch.where(scores == best, order, len(unique)).amin(0)  # the first class of equal maxima
    label = torch.tensor(unique, device=scores.device)[first]
    return torch.where(best >= rule.threshold, label, torch.tensor(none, device=scores.device)).cpu()
