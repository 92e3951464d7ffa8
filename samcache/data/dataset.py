"""What a dataset is, as every layer above ``data/`` sees it: a ``Dataset`` subclass per dataset.

A dataset says which images a split holds (sorted image ids, so cache rows are stable), how to read an image,
its semantic labels and, where it has them, its instances; its class table (id, name, train id, thing or
stuff, ignored in evaluation) and which evaluated class each label counts as. ``data/datasets.py`` registers
the subclasses by name; extraction, prompts, clicks, heads, predictions and pictures ask a ``Dataset``, never
a path or an id encoding of their own. Every reader returns exactly what the file holds or raises a one-line
``SamcacheError`` naming the file: a file that cannot be read without loss is refused, never guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from samcache.data.files import describe_ids, first_bad, integer_plane, read_image
from samcache.errors import SamcacheError, setting

@dataclass(frozen=True)
class ClassInfo:
    """One row of a dataset's class table. ``evaluated_as``: the evaluated class (one of the Cityscapes 19
    names the class sets use) its pixels count as; None for void and classes left out of evaluation."""

    id: int  # the value its label files hold
    name: str
    train_id: int  # 255: not trained on
    thing: bool  # its objects are told apart in the instance files (where the dataset has them)
    ignored: bool  # left out of evaluation
    evaluated_as: str | None = None


@dataclass(frozen=True)
class ImageRecord:
    """Where one image and its ground truth are. ``folder``: the folder the image sits in within its split
    (Cityscapes: its city; ACDC: its sequence; flat layouts: empty)."""

    image_id: str
    image_path: Path
    label_path: Path
    instance_path: Path | None = None
    folder: str = ""

    @property
    def city(self) -> str:  # Cityscapes' name for the folder
        return self.folder


@dataclass
class Example:
    """One image and its ground truth, as decoded from the files."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    label_ids: np.ndarray  # (H, W) uint8: the values the dataset's label files hold
    instance_ids: np.ndarray  # (H, W) uint16: the dataset's instance encoding (zeros when it has none)


class Dataset:
    """A dataset's layout, readers and class table. Subclasses set the class attributes and ``list_images`` /
    ``record_for``; everything else has a default that fits a dataset without instance files."""

    name: ClassVar[str]  # --dataset, and the cache's ``dataset`` attribute
    title: ClassVar[str]  # how messages name it
    classes: ClassVar[tuple[ClassInfo, ...]]
    void_id: ClassVar[int]  # the label of unlabelled pixels: padding, and pixels a prediction leaves unlabelled
    labels_are: ClassVar[str]  # what its label files hold (written to the cache for readers without samcache)
    instance_offset: ClassVar[int | None] = None  # instance files hold label * offset + k; None: no instance files
    conditions: ClassVar[tuple[str, ...]] = ()  # --condition choices ("all" first), for datasets that have them

    def __init__(self, condition: str | None = None):
        if condition is not None and not self.conditions:
            raise SamcacheError(f"{setting('condition')} applies to datasets with conditions; {self.title} has none")
        if self.conditions and condition is None:
            condition = self.conditions[0]
        if condition is not None and condition not in self.conditions:
            raise SamcacheError(f"unknown {self.title} condition {condition!r}; choose one of "
                                f"{', '.join(self.conditions)}")
        self.condition = condition

    def __eq__(self, other) -> bool:
        return isinstance(other, Dataset) and (self.name, self.condition) == (other.name, other.condition)

    def __hash__(self) -> int:
        return hash((self.name, self.condition))

    def __repr__(self) -> str:
        return f"<dataset {self.domain}>"

    @property
    def domain(self) -> str:
        """The dataset as runs and reports name it: ``acdc-fog``, ``cityscapes``."""
        return self.name if self.condition in (None, "all") else f"{self.name}-{self.condition}"

    # ---- the layout -------------------------------------------------------------------------------------------

    def list_images(self, root: str | Path, split: str) -> list[ImageRecord]:
        """Every image of ``split``, sorted by image id; label files are checked when read."""
        raise NotImplementedError

    def record_for(self, root: str | Path, split: str, image_id: str) -> ImageRecord:
        raise NotImplementedError

    def list_labelled(self, root: str | Path, split: str) -> list[ImageRecord]:
        """``list_images``, refusing an image without its ground truth in one line naming both files (before
        anything is written: an image that cannot be scored must not enter a split)."""
        records = self.list_images(root, split)
        for record in records:
            for path, what in ((record.label_path, "label"), (record.instance_path, "instance")):
                if path is not None and not path.is_file():
                    raise SamcacheError(f"{record.image_path} has no {what} file: {path} is missing (every image "
                                        f"of a split needs its ground truth)")
        return records

    def prediction_file(self, image_id: str) -> str:
        """Where a prediction PNG of ``image_id`` goes, relative to a run's predictions/ (in label ids)."""
        return f"{image_id}_labelIds.png"

    # ---- reading ----------------------------------------------------------------------------------------------

    def read_labels(self, path: str | Path) -> np.ndarray:
        """(H, W) uint8 label ids; a value outside the class table is one line naming the file and pixel."""
        values = integer_plane(Path(path), "label")
        allowed = self._valid_labels()
        ok = (values >= 0) & (values < len(allowed))
        ok[ok] = allowed[values[ok]]
        if not ok.all():
            ids = sorted(c.id for c in self.classes)
            raise SamcacheError(f"label file {path} holds {first_bad(values, ok)}, which is not a label id of "
                                f"{self.title} ({describe_ids(ids)})")
        return values.astype(np.uint8)

    def read_instances(self, record: ImageRecord, labels: np.ndarray) -> np.ndarray:
        """(H, W) uint16 instance ids in the dataset's encoding; zeros for a dataset without instance files."""
        return np.zeros(labels.shape, np.uint16)

    def load_example(self, record: ImageRecord) -> Example:
        """One image with its ground truth, checking that the files describe the same pixels."""
        image = read_image(record.image_path)
        labels = self.read_labels(record.label_path)
        if labels.shape != image.shape[:2]:
            raise SamcacheError(f"{record.label_path} is {labels.shape[1]}x{labels.shape[0]} but its image "
                                f"{record.image_path} is {image.shape[1]}x{image.shape[0]} (WxH)")
        return Example(image, labels, self.read_instances(record, labels))

    def load_item(self, record: ImageRecord, prepare) -> dict:
        """``load_example`` then ``prepare(image) -> (tensor, input_size)``, for DataLoader workers and Dask
        tasks: a bad file comes back as {"error": one line}, so one image never stops a run."""
        try:
            example = self.load_example(record)
            image, input_size = prepare(example.image)
            return {"image": image, "input_size": input_size, "labels": example.label_ids,
                    "instances": example.instance_ids}
        except SamcacheError as exc:
            return {"error": str(exc)}
        except Exception as exc:  # anything else a broken file can raise inside a worker
            return {"error": f"{record.image_path}: {type(exc).__name__}: {exc}"}

    # ---- the class table --------------------------------------------------------------------------------------

    def _valid_labels(self) -> np.ndarray:
        allowed = np.zeros(256, bool)
        allowed[[c.id for c in self.classes]] = True
        return allowed

    def evaluated(self) -> dict[int, str]:
        """label id -> the evaluated class its pixels count as (void and ignored classes absent)."""
        return {c.id: c.evaluated_as for c in self.classes if c.evaluated_as is not None and not c.ignored}

    def thing_names(self) -> set[str]:
        """Evaluated classes whose objects the instance files tell apart (none without instance files)."""
        if self.instance_offset is None:
            return set()
        return {c.evaluated_as for c in self.classes if c.thing and c.evaluated_as and not c.ignored}

    def instance_keys(self, instances: np.ndarray) -> np.ndarray:
        """(H, W) int64: the instance id of pixels that belong to an instance, 0 elsewhere (stuff, groups)."""
        instances = np.asarray(instances).astype(np.int64)
        if self.instance_offset is None:
            return np.zeros(instances.shape, np.int64)
        return np.where(instances >= self.instance_offset, instances, 0)

    def label_of_instance(self, keys: np.ndarray) -> np.ndarray:
        """The label id of each instance key (``instance_keys``' non-zero values)."""
        return np.asarray(keys) // (self.instance_offset or 1)

    # ---- a synthetic set in this layout (`samcache synth --dataset`; ``data/synth.py`` draws the scenes) --------

    def synthetic_id(self, split: str, index: int) -> str:
        """The image id of synthetic scene ``index`` of ``split``."""
        raise SamcacheError(f"samcache has no synthetic generator for {self.title}")

    def synthetic_size(self, index: int, size: tuple[int, int]) -> tuple[int, int]:
        """(W, H) of scene ``index`` when ``size`` is asked for (a dataset of mixed sizes varies it)."""
        return size

    def synthetic_files(self, root: Path, split: str, image_id: str) -> list[Path]:
        """Every file ``write_synthetic`` writes for one scene, the image first."""
        record = self.record_for(root, split, image_id)
        return [p for p in (record.image_path, record.label_path, record.instance_path) if p is not None]

    def write_synthetic(self, root: Path, split: str, image_id: str, index: int, scene) -> None:
        """One scene in this layout, every file atomic. ``scene``: (image, Cityscapes labelIds, Cityscapes
        instanceIds), as ``data/synth.py`` draws them; the dataset writes them in its own ids."""
        raise SamcacheError(f"samcache has no synthetic generator for {self.title}")

    synthetic_index_files: ClassVar[tuple[str, ...]] = ()  # what write_synthetic_index writes, below the root

    def write_synthetic_index(self, root: Path, ids: dict[str, list[str]]) -> None:
        """Files that list the scenes ({split: image ids}), written after them (GTA5's split.mat); default none."""

    def cache_attrs(self) -> dict:
        """What a cache records of its dataset, for readers with and without samcache (``cache.schema``)."""
        return {"dataset": self.name, "condition": self.condition, "label_ids": self.labels_are,
                "label_void": self.void_id, "instance_offset": self.instance_offset}


def unique_ids(records: list[ImageRecord]) -> list[ImageRecord]:
    """``records`` sorted by image id; an id twice is one line naming both files (it would count twice)."""
    seen: dict[str, ImageRecord] = {}
    for record in records:
        if record.image_id in seen:
            raise SamcacheError(f"image id {record.image_id} appears twice: {seen[record.image_id].image_path} and "
                                f"{record.image_path}")
        seen[record.image_id] = record
    return [seen[i] for i in sorted(seen)]
