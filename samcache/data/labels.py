"""Class sets: the classes a model predicts, and how a dataset's label ids map onto them.

The evaluated classes are Cityscapes' 19 (cityscapesScripts' label table, never retyped here); every dataset
says which of them each of its label ids counts as (``Dataset.evaluated``). A ``ClassSet`` is a class set
(``seed5``, ``cityscapes19``) for one dataset: its lookup table maps that dataset's label ids to class indices,
and labels its evaluation ignores (void, parking, rail track, ...) map to ``IGNORE``, so our confusion matrices
count exactly the pixels the dataset's own evaluation counts. Class indices are the class set's, whatever the
dataset: a head trained on one dataset predicts the same indices on another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from cityscapesscripts.helpers.labels import name2label

from samcache.choices import CLASS_SET_NAMES
from samcache.data.dataset import Dataset
from samcache.data.datasets import DEFAULT_DATASET, get_dataset
from samcache.errors import SamcacheError

IGNORE = 255  # void / not evaluated / padding, in every index map and target
SEED5 = ("road", "sidewalk", "building", "person", "car")  # the seed project's classes
OTHER = "other"
OTHER_COLOR = (128, 128, 128)
EVALUATED = tuple(lab.name for lab in sorted((lab for lab in CS_LABELS if 0 <= lab.id < 256 and not lab.ignoreInEval),
                                             key=lambda lab: lab.trainId))  # the 19, in trainId order
_ID_LABELS = [lab for lab in CS_LABELS if 0 <= lab.id < 256]
LABEL_IDS = np.array(sorted(lab.id for lab in _ID_LABELS))  # every labelId a gtFine PNG may hold (0..33)
INSTANCE_LABEL_IDS = np.array(sorted(lab.id for lab in _ID_LABELS if lab.hasInstances))  # id*1000+k allowed


@dataclass(frozen=True)
class ClassSet:
    """Class indices ``0..num_classes-1`` of ``dataset``'s labels; ``eval_indices`` are the ones in the mIoU (the
    classes of the set that the dataset labels at all)."""

    name: str
    class_names: tuple[str, ...]
    eval_indices: list[int]
    lut: np.ndarray  # (256,) uint8: label id -> class index or IGNORE
    pred_label_ids: np.ndarray  # (num_classes,) uint8: class index -> label id for official-style PNGs
    dataset: Dataset | None = None  # None: Cityscapes (built before datasets were data)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def eval_names(self) -> list[str]:
        return [self.class_names[c] for c in self.eval_indices]

    @property
    def source(self) -> Dataset:
        return self.dataset if self.dataset is not None else get_dataset(DEFAULT_DATASET)

    def to_index(self, label_ids: np.ndarray) -> np.ndarray:
        """Label ids (any shape, uint8) -> class indices (uint8, IGNORE for void)."""
        return self.lut[label_ids]

    def to_label_ids(self, index_map: np.ndarray) -> np.ndarray:
        """Class indices -> the dataset's label ids for prediction PNGs; IGNORE (nothing predicted) -> its void."""
        lut = np.full(256, self.source.void_id, np.uint8)
        lut[: self.num_classes] = self.pred_label_ids
        return lut[index_map]

    def color(self, index: int) -> tuple[int, int, int]:
        name = self.class_names[index]
        return OTHER_COLOR if name == OTHER else tuple(name2label[name].color)

    def is_thing(self, index: int) -> bool:
        """Whether the dataset's instance files tell this class's objects apart (else: connected components)."""
        return self.class_names[index] in self.source.thing_names()

    def instance_keys(self, instances: np.ndarray) -> np.ndarray:
        """(H, W) int64 instance id of pixels in an instance, 0 elsewhere (the dataset's encoding read)."""
        return self.source.instance_keys(instances)

    def instance_class(self, keys: np.ndarray) -> np.ndarray:
        """The class index of each instance key (IGNORE for a label outside the set)."""
        labels = self.source.label_of_instance(keys)
        return np.where((labels >= 0) & (labels < 256), self.lut[np.clip(labels, 0, 255)], IGNORE)

    def for_dataset(self, dataset: Dataset) -> "ClassSet":
        """The same classes (same indices) read from ``dataset``'s labels."""
        return self if dataset == self.source else get_class_set(self.name, dataset)

    def shared_with(self, other: Dataset) -> "ClassSet":
        """Only the evaluated classes ``other`` labels too: a head trained on ``other``, scored on this dataset,
        is scored on the classes both share."""
        theirs = set(other.evaluated().values())
        keep = [c for c in self.eval_indices if self.class_names[c] in theirs]
        if not keep:
            raise SamcacheError(f"{other.title} and {self.source.title} share no evaluated class of class set "
                                f"{self.name} ({', '.join(self.eval_names) or 'none'} here, "
                                f"{', '.join(sorted(theirs)) or 'none'} there): nothing to score")
        return ClassSet(self.name, self.class_names, keep, self.lut, self.pred_label_ids, self.dataset)


def _build(name: str, names: tuple[str, ...], index_of, dataset: Dataset) -> ClassSet:
    """``index_of(evaluated name) -> class index``; the dataset's labels fill the lookup table."""
    lut = np.full(256, IGNORE, np.uint8)
    labelled = set()
    for label_id, evaluated in dataset.evaluated().items():
        lut[label_id] = index_of(evaluated)
        labelled.add(int(lut[label_id]))
    pred = np.full(len(names), dataset.void_id, np.uint8)
    for label_id in sorted(dataset.evaluated(), reverse=True):  # the lowest label id of a class names it
        if names[lut[label_id]] != OTHER:
            pred[lut[label_id]] = label_id
    evaluated = [c for c in range(len(names)) if names[c] != OTHER and c in labelled]
    return ClassSet(name, names, evaluated, lut, pred, dataset)


def _seed5(dataset: Dataset) -> ClassSet:
    names = (*SEED5, OTHER)  # evaluated classes outside the five train as "other"
    return _build("seed5", names, lambda n: names.index(n) if n in SEED5 else len(SEED5), dataset)


def _cityscapes19(dataset: Dataset) -> ClassSet:
    return _build("cityscapes19", EVALUATED, EVALUATED.index, dataset)


CLASS_SETS = dict(zip(CLASS_SET_NAMES, (_seed5, _cityscapes19), strict=True))  # names: samcache.choices


def get_class_set(name: "str | ClassSet", dataset: "Dataset | str | None" = None) -> ClassSet:
    """A class set by name (``seed5``, ``cityscapes19``) for ``dataset`` (default Cityscapes); a ClassSet is
    returned as it is, or rebuilt for ``dataset`` when that is another one."""
    if isinstance(dataset, str):
        dataset = get_dataset(dataset)
    if isinstance(name, ClassSet):
        return name if dataset is None else name.for_dataset(dataset)
    if name not in CLASS_SETS:
        raise SamcacheError(f"unknown class set {name!r}; choose one of {', '.join(CLASS_SETS)}")
    return CLASS_SETS[name](dataset if dataset is not None else get_dataset(DEFAULT_DATASET))
