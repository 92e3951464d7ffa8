"""Cached SAM 3 trunks + a phrase map -> one label map per image (and its instances), no ground truth read.

All classes' phrases of all images in a batch go through one grounding call
(``features.sam3.decode_text``); then each image is composed by ``evaluation.concepts``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from samcache.data.labels import IGNORE
from samcache.errors import SamcacheError
from samcache.evaluation.concepts import (COMPOSE_MODES, InstanceComposition, Instances, PhraseMap,
                                          SemanticComposition, candidates, compose_instances, compose_semantic)


@dataclass
class ConceptPrediction:
    label_map: torch.Tensor  # (H,W) long: class index, IGNORE where unlabeled
    instances: Instances | None  # compose "instances" only


@torch.inference_mode()
def segment_by_concepts(decoder, trunk: torch.Tensor, original_sizes: list[tuple[int, int]], phrases: PhraseMap,
                        compose: str = "instances", instance_rule: InstanceComposition = InstanceComposition(),
                        semantic_rule: SemanticComposition = SemanticComposition()) -> list[ConceptPrediction]:
    """(M,C,72,72) cached trunks of M images with their (H, W) -> M predictions at original resolution."""
    from samcache.features.sam3 import decode_text, upsample_text_masks

    if compose not in COMPOSE_MODES:
        raise SamcacheError(f"unknown composition {compose!r}; choose one of {', '.join(COMPOSE_MODES)}")
    prompts = phrases.prompts()
    if not prompts:
        raise SamcacheError("no text prompts given (the phrase list is empty)")
    m, p = len(trunk), len(prompts)
    backbone = decoder.backbone_out(trunk, necks=("detector",))
    image_index = torch.arange(m).repeat_interleave(p)
    results = decode_text(decoder, backbone, image_index, [phrase for _ in range(m) for _, phrase in prompts])
    classes = torch.tensor([c for c, _ in prompts])
    out = []
    for i, size in enumerate(original_sizes):
        mine = results[i * p:(i + 1) * p]
        if compose == "semantic-head":
            logits = torch.stack([r.semantic_logits for r in mine])[:, None]
            probs = torch.nn.functional.interpolate(logits, tuple(size), mode="bilinear", align_corners=False)[:, 0]
            out.append(ConceptPrediction(compose_semantic(probs.sigmoid(), classes, semantic_rule).cpu(), None))
            continue
        masks, confs, cls = [], [], []
        for c, r in zip(classes.tolist(), mine):
            conf = r.scores * r.presence
            keep = candidates(conf, instance_rule)  # upsample only what can pass the score test
            if len(keep):
                masks.append(upsample_text_masks(r.mask_logits[keep], size).cpu())
                confs.append(conf[keep].cpu())
                cls.append(torch.full((len(keep),), c))
        if masks:
            kept = compose_instances(torch.cat(masks), torch.cat(confs), torch.cat(cls), instance_rule)
        else:
            kept = compose_instances(torch.zeros((0, *size), dtype=torch.bool), torch.zeros(0), torch.zeros(0),
                                     instance_rule)
        out.append(ConceptPrediction(kept.label_map, kept))
    return out


__all__ = ["ConceptPrediction", "segment_by_concepts", "IGNORE"]
