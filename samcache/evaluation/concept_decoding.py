"""Cached features of a text-prompt family + a phrase map -> one label map per image (and its instances),
no ground truth read.

All classes' phrases of all images in a batch go through one ``Backend.decode_text`` call (SAM 3: one
grounding call, ``decode_concepts``); then each image's results are composed (``compose_image``: the rules of
``evaluation.concepts`` and ``evaluation.fused``). ``sweep`` composes stored results the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from samcache.choices import COMPOSE_MODES
from samcache.data.labels import IGNORE
from samcache.errors import SamcacheError
from samcache.evaluation.concepts import (InstanceComposition, Instances, PhraseMap, SemanticComposition,
                                          candidates, compose_semantic, paint_instances)
from samcache.evaluation.fused import FusedComposition, compose_fused

LOGIT_PIXELS = 2**26  # upsampled float32 logits at a time (256 MiB): masks are made and painted in chunks


@dataclass
class ConceptPrediction:
    label_map: torch.Tensor  # (H,W) long: class index, IGNORE where unlabeled
    instances: Instances | None  # compose "instances" only


@dataclass(frozen=True)
class Composition:
    """How one image's grounding results become a label map: the rule (``compose``) and every rule's settings."""

    compose: str = "instances"
    instance: InstanceComposition = InstanceComposition()
    semantic: SemanticComposition = SemanticComposition()
    fused: FusedComposition = FusedComposition()

    def __post_init__(self):
        if self.compose not in COMPOSE_MODES:
            raise SamcacheError(f"unknown composition {self.compose!r}; choose one of {', '.join(COMPOSE_MODES)}")


@torch.inference_mode()
def decode_concepts(backend, decoder, features: dict[str, torch.Tensor], images: int,
                    phrases: PhraseMap) -> list[list]:
    """Every phrase on each of ``images`` images ({name: (M,C,h,w)}) in one ``decode_text`` call -> per image,
    its P ``TextResult`` in ``phrases.prompts()`` order."""
    prompts = phrases.prompts()
    if not prompts:
        raise SamcacheError("no text prompts given (the phrase list is empty)")
    p = len(prompts)
    image_index = torch.arange(images).repeat_interleave(p)
    results = backend.decode_text(decoder, features, image_index, [phrase for _ in range(images) for _, phrase in prompts])
    return [results[i * p:(i + 1) * p] for i in range(images)]


@torch.inference_mode()
def compose_image(backend, results: list, classes: list[int], size: tuple[int, int], how: Composition,
                  instance_masks: bool = False) -> ConceptPrediction:
    """One image's P grounding results (class ``classes[p]`` each) -> its prediction at ``size`` (H, W)."""
    size = tuple(int(v) for v in size)
    if how.compose == "semantic-head":
        logits = torch.stack([r.semantic_logits for r in results])[:, None]
        probs = torch.nn.functional.interpolate(logits, size, mode="bilinear", align_corners=False)[:, 0]
        return ConceptPrediction(compose_semantic(probs.sigmoid(), torch.tensor(classes), how.semantic).cpu(), None)
    if how.compose == "fused":
        return ConceptPrediction(compose_fused(results, classes, size, how.fused,
                                               max(1, LOGIT_PIXELS // (size[0] * size[1]))), None)
    return _compose_instances(backend, results, classes, size, how.instance, instance_masks)


@torch.inference_mode()
def segment_by_concepts(backend, decoder, features: dict[str, torch.Tensor], original_sizes: list[tuple[int, int]],
                        phrases: PhraseMap, compose: str = "instances",
                        instance_rule: InstanceComposition = InstanceComposition(),
                        semantic_rule: SemanticComposition = SemanticComposition(),
                        instance_masks: bool = True,
                        fused_rule: FusedComposition = FusedComposition()) -> list[ConceptPrediction]:
    """Cached features of M images ({name: (M,C,h,w)}) with their (H, W) -> M predictions at original resolution;
    ``backend`` (``features.backend.Backend``, with ``text_prompts``) decodes the phrases with ``decoder``.

    ``instance_masks``: keep the kept instances' (K,H,W) masks (``--save-instances``); without them only
    the label map, confidences and classes are returned, and memory stays bounded whatever the thresholds.
    """
    how = Composition(compose, instance_rule, semantic_rule, fused_rule)
    decoded = decode_concepts(backend, decoder, features, len(original_sizes), phrases)
    classes = [c for c, _ in phrases.prompts()]
    return [compose_image(backend, mine, classes, size, how, instance_masks)
            for mine, size in zip(decoded, original_sizes)]


def _compose_instances(backend, results, classes: list[int], size: tuple[int, int], rule: InstanceComposition,
                       keep_masks: bool) -> ConceptPrediction:
    """One image's P grounding results -> its label map and instances (``concepts.paint_instances``), the
    candidates' 288x288 logits upsampled a chunk at a time (LOGIT_PIXELS): memory stays bounded whatever
    the thresholds."""
    picks, confs = [], []
    for p, r in enumerate(results):
        conf = r.scores * r.presence
        keep = candidates(conf, rule)
        picks += [(p, q) for q in keep.tolist()]
        confs.append(conf[keep].float().cpu())

    def masks_of(part: list[int]) -> torch.Tensor:
        return backend.upsample_text_masks(torch.stack([results[picks[k][0]].mask_logits[picks[k][1]] for k in part]), size)

    pick_classes = torch.tensor([classes[p] for p, _ in picks], dtype=torch.long)
    instances = paint_instances(torch.cat(confs), pick_classes, rule, size, masks_of,
                                max(1, LOGIT_PIXELS // (size[0] * size[1])), keep_masks)
    return ConceptPrediction(instances.label_map, instances)


__all__ = ["Composition", "ConceptPrediction", "compose_image", "decode_concepts", "segment_by_concepts", "IGNORE"]
