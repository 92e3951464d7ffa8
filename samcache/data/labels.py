"""Class sets built from cityscapesscripts' official label table (never retyped here).

A ``ClassSet`` maps Cityscapes labelIds (what gtFine/*_labelIds.png stores) to the class
indices a model predicts, and back. Labels that the official evaluation ignores
(``ignoreInEval``: void, parking, rail track, ...) map to ``IGNORE`` in every set, so our
confusion matrices count exactly the pixels cityscapesScripts counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from cityscapesscripts.helpers.labels import name2label

from samcache.choices import CLASS_SET_NAMES
from samcache.errors import SamcacheError

IGNORE = 255  # void / not evaluated / padding, in every index map and target
SEED5 = ("road", "sidewalk", "building", "person", "car")  # the seed project's classes
OTHER = "other"
OTHER_COLOR = (128, 128, 128)
_ID_LABELS = [lab for lab in CS_LABELS if 0 <= lab.id < 256]
LABEL_IDS = np.array(sorted(lab.id for lab in _ID_LABELS))  # every labelId a gtFine PNG may hold (0..33)
INSTANCE_LABEL_IDS = np.array(sorted(lab.id for lab in _ID_LABELS if lab.hasInstances))  # id*1000+k allowed


@dataclass(frozen=True)
class ClassSet:
    """Class indices ``0..num_classes-1``; ``eval_indices`` are the ones in the mIoU."""

    name: str
    class_names: tuple[str, ...]
    eval_indices: list[int]
    lut: np.ndarray  # (256,) uint8: labelId -> class index or IGNORE
    pred_label_ids: np.ndarray  # (num_classes,) uint8: class index -> labelId for official-style PNGs

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def eval_names(self) -> list[str]:
        return [self.class_names[c] for c in self.eval_indices]

    def to_index(self, label_ids: np.ndarray) -> np.ndarray:
        """labelIds (any shape, uint8) -> class indices (uint8, IGNORE for void)."""
        return self.lut[label_ids]

    def to_label_ids(self, index_map: np.ndarray) -> np.ndarray:
        """Class indices -> official labelIds for prediction PNGs; IGNORE (nothing predicted) -> unlabeled (0)."""
        lut = np.full(256, name2label["unlabeled"].id, np.uint8)
        lut[: self.num_classes] = self.pred_label_ids
        return lut[index_map]

    def color(self, index: int) -> tuple[int, int, int]:
        name = self.class_names[index]
        return OTHER_COLOR if name == OTHER else tuple(name2label[name].color)


def _seed5() -> ClassSet:
    names = (*SEED5, OTHER)
    lut = np.full(256, IGNORE, np.uint8)
    for lab in _ID_LABELS:
        if not lab.ignoreInEval:  # evaluated classes outside the five train as "other"
            lut[lab.id] = names.index(lab.name) if lab.name in SEED5 else len(SEED5)
    pred = [name2label[n].id for n in SEED5] + [name2label["unlabeled"].id]
    return ClassSet("seed5", names, list(range(len(SEED5))), lut, np.array(pred, np.uint8))


def _cityscapes19() -> ClassSet:
    evaluated = sorted((lab for lab in _ID_LABELS if not lab.ignoreInEval), key=lambda lab: lab.trainId)
    lut = np.full(256, IGNORE, np.uint8)
    for lab in evaluated:
        lut[lab.id] = lab.trainId
    names = tuple(lab.name for lab in evaluated)
    pred = np.array([lab.id for lab in evaluated], np.uint8)
    return ClassSet("cityscapes19", names, list(range(len(names))), lut, pred)


CLASS_SETS = dict(zip(CLASS_SET_NAMES, (_seed5, _cityscapes19), strict=True))  # names: samcache.choices


def get_class_set(name: "str | ClassSet") -> ClassSet:
    """A class set by name (``seed5``, ``cityscapes19``); a ClassSet is returned as it is."""
    if isinstance(name, ClassSet):
        return name
    if name not in CLASS_SETS:
        raise SamcacheError(f"unknown class set {name!r}; choose one of {', '.join(CLASS_SETS)}")
    return CLASS_SETS[name]()
