"""Phase 1 by concept prompts: class names as noun phrases, no ground truth used to prompt.

A ``PhraseMap`` says which noun phrases prompt each evaluated class (defaults: the Cityscapes class
names from cityscapesScripts' label table; users add synonyms). A model that answers a phrase with
instance masks and scores (SAM 3) is turned into one label map per image in one of two ways:

- ``instances`` (the SAM 3 paper's method, the default; ``paint_instances``): keep an instance when
  presence x score >= ``score_threshold`` and its area >= ``min_area`` pixels; a pixel takes the
  class of the highest-scoring kept mask covering it, else it is unlabeled;
- ``compose_semantic``: per class, the semantic head's probability map; a pixel takes the argmax
  over classes, or is unlabeled when that maximum is below ``threshold``.

The paper gives no thresholds; the defaults are upstream ``Sam3Processor``'s confidence threshold
(0.5) and the smallest region cityscapesScripts' instance evaluation counts (100 pixels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from samcache.data.labels import IGNORE, OTHER, ClassSet, get_class_set
from samcache.errors import SamcacheError
from samcache.evaluation.metrics import paint_order



@dataclass(frozen=True)
class PhraseMap:
    """Evaluated class index -> the noun phrases that prompt it (the first is the class name)."""

    class_set: str
    phrases: dict[int, tuple[str, ...]]

    def prompts(self) -> list[tuple[int, str]]:
        """Every (class index, phrase) pair, in class order: one image's batched call."""
        return [(c, p) for c, ps in self.phrases.items() for p in ps]

    def as_config(self, class_set: ClassSet) -> dict[str, list[str]]:
        """Class name -> phrases, for config.yaml."""
        return {class_set.class_names[c]: list(ps) for c, ps in self.phrases.items()}


def phrase_map(class_set: str | ClassSet, synonyms: dict[str, list[str]] | None = None,
               base: dict[str, list[str]] | None = None) -> PhraseMap:
    """Default phrases (``base``, a phrase set's {class name: [phrases]}, else the class names; seed5's
    catch-all "other" is not a concept and is not prompted) plus ``synonyms`` {class name: [extra phrases]};
    an unknown class is an error."""
    cs = get_class_set(class_set)
    phrases = {}
    for c in cs.eval_indices:
        if cs.class_names[c] != OTHER:
            given = (base or {}).get(cs.class_names[c], [cs.class_names[c]])
            phrases[c] = [p for i, p in enumerate(given) if p.lower() not in {q.lower() for q in given[:i]}]
    by_name = {cs.class_names[c]: c for c in phrases}
    for name, extra in (synonyms or {}).items():
        if name not in by_name:
            raise SamcacheError(f"unknown class {name!r} in the phrase map; classes of {cs.name}: "
                                f"{', '.join(by_name)}")
        if isinstance(extra, str) or not all(isinstance(p, str) and p.strip() for p in extra):
            raise SamcacheError(f"phrases for {name!r} must be a list of non-empty strings, got {extra!r}")
        mine = phrases[by_name[name]]
        mine += [p.strip() for p in extra if p.strip().lower() not in {q.lower() for q in mine}]
    owner: dict[str, int] = {}
    for c, ps in phrases.items():  # SAM 3's tokenizer lowercases: "Car" and "car" are one prompt
        for phrase in ps:
            other = owner.setdefault(phrase.lower(), c)
            if other != c:
                raise SamcacheError(f"phrase {phrase!r} prompts both {cs.class_names[other]} and "
                                    f"{cs.class_names[c]}: a phrase can prompt one class only")
    if not phrases:
        raise SamcacheError(f"class set {cs.name} has no class to prompt")
    return PhraseMap(cs.name, {c: tuple(ps) for c, ps in phrases.items()})


@dataclass(frozen=True)
class InstanceComposition:
    score_threshold: float = 0.5  # presence x score, as Sam3Processor's confidence: painted into the label map
    min_area: int = 100  # pixels at the original resolution
    list_threshold: float | None = None  # instances listed (for AP) from this confidence; None: score_threshold

    def __post_init__(self):
        for name in ("score_threshold", "list_threshold"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise SamcacheError(f"{name.replace('_', ' ')} must be in [0, 1], got {value}")
        if self.min_area < 0:
            raise SamcacheError(f"minimum area must be >= 0, got {self.min_area}")

    @property
    def listed_from(self) -> float:
        return self.score_threshold if self.list_threshold is None else self.list_threshold


@dataclass(frozen=True)
class SemanticComposition:
    threshold: float = 0.5  # sigmoid of the semantic head's logit

    def __post_init__(self):
        if not 0.0 <= self.threshold <= 1.0:
            raise SamcacheError(f"semantic threshold must be in [0, 1], got {self.threshold}")


@dataclass
class Instances:
    """One image's kept instances, at the original resolution."""

    masks: torch.Tensor | None  # (K,H,W) bool; None when not kept (the label map alone was asked for)
    confidences: torch.Tensor  # (K,) float: presence x score
    classes: torch.Tensor  # (K,) long: class indices
    label_map: torch.Tensor = field(default=None)  # (H,W) long: class index or IGNORE


def candidates(confidences: torch.Tensor, rule: InstanceComposition) -> torch.Tensor:
    """(Q,) presence x score -> indices of the queries worth upsampling (before the area test): those that
    may be painted or listed."""
    return torch.nonzero(confidences >= min(rule.score_threshold, rule.listed_from)).flatten()


def paint_instances(confidences: torch.Tensor, classes: torch.Tensor, rule: InstanceComposition,
                    size: tuple[int, int], masks_of: Callable[[list[int]], torch.Tensor], chunk: int,
                    keep_masks: bool = True, none: int = IGNORE) -> Instances:
    """K candidates -> the label map and the listed instances, ``chunk`` masks at a time.

    ``confidences`` (K,) and ``classes`` (K,); ``masks_of(indices)`` gives those candidates' (k,H,W) bool
    masks (precomputed, or upsampled on demand: no (K,H,W) tensor need exist). Masks are visited from the
    lowest confidence up (``paint_order``); one whose area >= ``min_area`` is painted when its confidence
    >= ``score_threshold``, so the highest-confidence mask covering a pixel gives its class, and listed
    when its confidence >= ``listed_from``. Uncovered pixels get ``none``. Listed instances keep the
    candidates' order; their masks only with ``keep_masks``.
    """
    confidences, classes = confidences.float().cpu(), classes.long().cpu()
    painted = (confidences >= rule.score_threshold).tolist()  # the same float32 comparison as candidates()
    listed = (confidences >= rule.listed_from).tolist()
    order = [k for k in paint_order(confidences).tolist() if painted[k] or listed[k]]
    label, kept, masks = None, [], {}
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        chunk_masks = masks_of(part)
        if label is None:
            label = torch.full(size, none, dtype=torch.long, device=chunk_masks.device)
        area = torch.count_nonzero(chunk_masks.flatten(1), dim=1).tolist()
        for j, k in enumerate(part):
            if area[j] < rule.min_area:
                continue
            if painted[k]:
                label.masked_fill_(chunk_masks[j], int(classes[k]))
            if listed[k]:
                kept.append(k)
                if keep_masks:
                    masks[k] = chunk_masks[j].cpu()
    kept.sort()
    kept_masks = None
    if keep_masks:
        kept_masks = torch.stack([masks[k] for k in kept]) if kept else torch.zeros((0, *size), dtype=torch.bool)
    label = torch.full(size, none, dtype=torch.long) if label is None else label.cpu()
    return Instances(kept_masks, confidences[kept], classes[kept], label)


def compose_semantic(probabilities: torch.Tensor, classes: torch.Tensor, rule: SemanticComposition,
                     none: int = IGNORE) -> torch.Tensor:
    """(P,H,W) per-prompt semantic probabilities with (P,) class indices -> (H,W) label map.

    A class prompted by several phrases takes the maximum over them; each pixel takes the argmax
    over classes, or ``none`` where that maximum is below the threshold.
    """
    if len(probabilities) == 0:
        raise SamcacheError("no text prompts given (the phrase list is empty)")
    classes = classes.long().to(probabilities.device)
    unique = torch.unique(classes)
    per_class = torch.stack([probabilities[classes == c].amax(0) for c in unique])
    best, index = per_class.max(0)
    return torch.where(best >= rule.threshold, unique[index], torch.tensor(none, device=probabilities.device))


def confidence_order(confidences: np.ndarray) -> np.ndarray:
    """Indices by decreasing confidence (stable): the order instance files list their masks."""
    return np.argsort(-np.asarray(confidences, np.float64), kind="stable")
