"""Cityscapes in its official layout, with cityscapesScripts' class table (never retyped here).

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png   (+ _instanceIds, _color)

Images are listed in sorted order of image id ``<city>_<seq>_<frame>``. Instance files hold a labelId for stuff
and groups, and ``labelId * 1000 + k`` for the k-th instance of a class with instances.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import labels as CS_LABELS

from samcache.data.dataset import ClassInfo, Dataset, Example, ImageRecord, unique_ids
from samcache.data.files import first_bad, image_size, integer_plane, read_image, save_png
from samcache.errors import SamcacheError

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
COLOR_SUFFIX = "_gtFine_color.png"
INSTANCE_OFFSET = 1000

SYNTH_CITIES = ("synthbergen", "synthdorf")
SYNTH_FRAME = "000019"  # Cityscapes annotates the 20th frame of each snippet

# every labelId a gtFine PNG may hold (0..33); license plate (-1) is never in a PNG
CLASS_TABLE = tuple(ClassInfo(lab.id, lab.name, lab.trainId, bool(lab.hasInstances), bool(lab.ignoreInEval),
                              None if lab.ignoreInEval else lab.name)
                    for lab in sorted(CS_LABELS, key=lambda lab: lab.id) if 0 <= lab.id < 256)
COLORS = np.zeros((256, 3), np.uint8)  # labelId -> the official colour (gtFine *_color.png, GTA5's palette)
for _lab in CS_LABELS:
    if 0 <= _lab.id < 256:
        COLORS[_lab.id] = _lab.color

__all__ = ["Cityscapes", "ImageRecord", "Example", "list_images", "record_for", "read_image", "read_label_ids",
           "read_instance_ids", "load_example", "image_size"]


def cityscapes_records(image_root: Path, label_root: Path, image_suffix: str, label_suffix: str,
                       instance_suffix: str | None, title: str, check=None) -> list[ImageRecord]:
    """``<image_root>/<folder>/<id><image_suffix>`` with labels beside ``<label_root>/<folder>/<id>...``: the
    Cityscapes-style layout (ACDC shares it), sorted by image id. ``check(record)``: the dataset's naming rule,
    applied to every record before ids are compared."""
    if not image_root.is_dir():
        raise SamcacheError(f"no {title} split directory {image_root} (expected {image_root}/<folder>/*{image_suffix})")
    paths = sorted(image_root.glob(f"*/*{image_suffix}"))
    if not paths:
        raise SamcacheError(f"{image_root} holds no */*{image_suffix} files")
    records = []
    for path in paths:
        image_id, folder = path.name[: -len(image_suffix)], path.parent.name
        gt = label_root / folder
        records.append(ImageRecord(image_id, path, gt / f"{image_id}{label_suffix}",
                                   gt / f"{image_id}{instance_suffix}" if instance_suffix else None, folder))
        if check is not None:
            check(records[-1])
    return unique_ids(records)


class Cityscapes(Dataset):
    name = "cityscapes"
    title = "Cityscapes"
    classes = CLASS_TABLE
    void_id = 0  # unlabeled
    labels_are = "Cityscapes labelIds (cityscapesScripts' label table)"
    instance_offset = INSTANCE_OFFSET

    def list_images(self, root: str | Path, split: str) -> list[ImageRecord]:
        image_dir = Path(root) / "leftImg8bit" / split
        if not image_dir.is_dir():
            raise SamcacheError(f"no Cityscapes split directory {image_dir} (expected "
                                f"<data>/leftImg8bit/{split}/<city>/)")

        def named_for_its_city(record: ImageRecord) -> None:  # so that no image can be listed twice
            parts = record.image_id.rsplit("_", 2)
            if len(parts) != 3 or parts[0] != record.folder or not all(parts):
                raise SamcacheError(f"{record.image_path} breaks Cityscapes' naming rule: an image is "
                                    f"<city>_<seq>_<frame>{IMAGE_SUFFIX} inside leftImg8bit/{split}/<city>/ (here the "
                                    f"folder is {record.folder}/); rename or move it")

        return cityscapes_records(image_dir, Path(root) / "gtFine" / split, IMAGE_SUFFIX, LABEL_SUFFIX,
                                  INSTANCE_SUFFIX, self.title, named_for_its_city)

    def record_for(self, root: str | Path, split: str, image_id: str) -> ImageRecord:
        city = image_id.rsplit("_", 2)[0]
        gt = Path(root) / "gtFine" / split / city
        return ImageRecord(image_id, Path(root) / "leftImg8bit" / split / city / f"{image_id}{IMAGE_SUFFIX}",
                           gt / f"{image_id}{LABEL_SUFFIX}", gt / f"{image_id}{INSTANCE_SUFFIX}", city)

    def prediction_file(self, image_id: str) -> str:
        """``<city>/<image_id>_labelIds.png``, the layout cityscapesScripts' evaluation reads."""
        return f"{image_id.rsplit('_', 2)[0]}/{image_id}_labelIds.png"

    def synthetic_id(self, split: str, index: int) -> str:
        return f"{SYNTH_CITIES[index % len(SYNTH_CITIES)]}_{index:06d}_{SYNTH_FRAME}"

    def synthetic_files(self, root: Path, split: str, image_id: str) -> list[Path]:
        record = self.record_for(root, split, image_id)
        return [record.image_path, record.label_path, record.instance_path,
                record.label_path.parent / f"{image_id}{COLOR_SUFFIX}"]

    def write_synthetic(self, root: Path, split: str, image_id: str, index: int, scene) -> None:
        image, labels, instances = scene
        for array, path in zip((image, labels, instances.astype(np.uint16), COLORS[labels]),
                               self.synthetic_files(root, split, image_id)):
            save_png(array, path)

    def read_instances(self, record: ImageRecord, labels: np.ndarray) -> np.ndarray:
        """labelId for stuff and groups, labelId * 1000 + k for the k-th instance of a thing; they must agree
        with the labelIds pixel for pixel."""
        instance_ids = read_instance_ids(record.instance_path)
        if instance_ids.shape != labels.shape:
            raise SamcacheError(f"{record.instance_path} is {instance_ids.shape[1]}x{instance_ids.shape[0]} but its "
                                f"labels are {labels.shape[1]}x{labels.shape[0]} (WxH)")
        as_label = np.where(instance_ids >= INSTANCE_OFFSET, instance_ids // INSTANCE_OFFSET, instance_ids)
        if not np.array_equal(as_label, labels):
            y, x = (int(v[0]) for v in np.nonzero(as_label != labels))
            raise SamcacheError(f"{record.instance_path} disagrees with its labelIds at (x={x}, y={y}): instance id "
                                f"{int(instance_ids[y, x])}, labelId {int(labels[y, x])}")
        return instance_ids


_VALID_LABEL = np.zeros(1 << 16, bool)
_VALID_LABEL[[c.id for c in CLASS_TABLE]] = True
_VALID_INSTANCE_CLASS = np.zeros(1 << 16, bool)
_VALID_INSTANCE_CLASS[[c.id for c in CLASS_TABLE if c.thing]] = True
_CITYSCAPES = Cityscapes()


def read_instance_ids(path: str | Path) -> np.ndarray:
    """(H, W) uint16: labelId for stuff and groups, labelId * 1000 + k for the k-th instance of a thing."""
    values = integer_plane(Path(path), "instance").astype(np.int64)
    stuff = values < INSTANCE_OFFSET
    ok = values >= 0
    ok[ok & stuff] = _VALID_LABEL[values[ok & stuff]]
    thing = ok & ~stuff
    ok[thing] = (values[thing] // INSTANCE_OFFSET < len(_VALID_INSTANCE_CLASS)) & \
        _VALID_INSTANCE_CLASS[np.minimum(values[thing] // INSTANCE_OFFSET, len(_VALID_INSTANCE_CLASS) - 1)]
    if not ok.all():
        raise SamcacheError(f"instance file {path} holds {first_bad(values, ok)}, which is neither a labelId nor "
                            f"labelId*1000+k of a class with instances")
    return values.astype(np.uint16)


# the module's functions, for notebooks and tests that read Cityscapes directly

def list_images(root: str | Path, split: str) -> list[ImageRecord]:
    return _CITYSCAPES.list_images(root, split)


def record_for(root: str | Path, split: str, image_id: str) -> ImageRecord:
    return _CITYSCAPES.record_for(root, split, image_id)


def read_label_ids(path: str | Path) -> np.ndarray:
    """(H, W) uint8 Cityscapes labelIds; any value outside the official label table is an error."""
    return _CITYSCAPES.read_labels(path)


def load_example(record: ImageRecord) -> Example:
    return _CITYSCAPES.load_example(record)


def load_item(record: ImageRecord, prepare) -> dict:
    return _CITYSCAPES.load_item(record, prepare)


_ = (read_image, image_size)  # re-exported: Cityscapes' readers as before the dataset seam
