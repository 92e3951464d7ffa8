"""Reader for the official Cityscapes layout, strict about what it accepts.

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png   (+ _instanceIds, _color)

Images are listed in sorted order of image id ``<city>_<seq>_<frame>``, so row numbers in
the cache are stable across runs and machines. Every reader either returns exactly what the
file holds or raises a one-line SamcacheError naming the file and the reason: a PNG that
cannot be converted without loss is refused, never guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from samcache.data.labels import INSTANCE_LABEL_IDS, LABEL_IDS
from samcache.errors import SamcacheError

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
COLOR_SUFFIX = "_gtFine_color.png"

# PIL modes that become RGB without losing anything the encoder would see (alpha is dropped;
# 16-bit RGB PNGs open as "RGB" holding the high byte of each sample).
RGB_MODES = {"RGB": "RGB", "RGBA": "RGB drops alpha", "L": "gray to RGB", "P": "palette to RGB"}
LABEL_MODES = ("L", "P", "I;16", "I;16B", "I")  # single channel, integer
_VALID_LABEL = np.zeros(1 << 16, bool)
_VALID_LABEL[LABEL_IDS] = True
_VALID_INSTANCE_CLASS = np.zeros(1 << 16, bool)
_VALID_INSTANCE_CLASS[INSTANCE_LABEL_IDS] = True


@dataclass(frozen=True)
class ImageRecord:
    image_id: str
    city: str
    image_path: Path
    label_path: Path
    instance_path: Path


@dataclass
class Example:
    """One image and its ground truth, as decoded from the PNGs."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    label_ids: np.ndarray  # (H, W) uint8 Cityscapes labelIds
    instance_ids: np.ndarray  # (H, W) uint16 Cityscapes instanceIds


def record_for(root: str | Path, split: str, image_id: str) -> ImageRecord:
    city = image_id.rsplit("_", 2)[0]
    gt = Path(root) / "gtFine" / split / city
    return ImageRecord(image_id, city, Path(root) / "leftImg8bit" / split / city / f"{image_id}{IMAGE_SUFFIX}",
                       gt / f"{image_id}{LABEL_SUFFIX}", gt / f"{image_id}{INSTANCE_SUFFIX}")


def list_images(root: str | Path, split: str) -> list[ImageRecord]:
    """Every image of ``split``, sorted by image id; label files are checked when read."""
    image_dir = Path(root) / "leftImg8bit" / split
    if not image_dir.is_dir():
        raise SamcacheError(f"no Cityscapes split directory {image_dir} (expected <data>/leftImg8bit/{split}/<city>/)")
    paths = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    if not paths:
        raise SamcacheError(f"{image_dir} holds no *{IMAGE_SUFFIX} files")
    seen: dict[str, Path] = {}
    for path in paths:
        image_id = path.name[: -len(IMAGE_SUFFIX)]
        parts = image_id.rsplit("_", 2)
        if len(parts) != 3 or parts[0] != path.parent.name or not all(parts):
            raise SamcacheError(f"{path} breaks Cityscapes' naming rule: an image is <city>_<seq>_<frame>"
                                f"{IMAGE_SUFFIX} inside leftImg8bit/{split}/<city>/ (here the folder is "
                                f"{path.parent.name}/); rename or move it")
        if image_id in seen:  # unreachable while the rule above holds; a duplicate would count twice everywhere
            raise SamcacheError(f"image id {image_id} appears twice: {seen[image_id]} and {path}")
        seen[image_id] = path
    return [record_for(root, split, i) for i in sorted(seen)]


def _open_png(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise SamcacheError(f"missing {what} file {path}")
    try:
        image = Image.open(path)
        image.load()
        return image
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError ... for broken files
        raise SamcacheError(f"cannot read {what} {path}: {exc}") from None


def read_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; refuses modes that RGB cannot hold losslessly (16-bit gray, CMYK, float...)."""
    image = _open_png(Path(path), "image")
    if image.mode not in RGB_MODES:
        raise SamcacheError(f"image {path} has PIL mode {image.mode} ({_describe_mode(image.mode)}); samcache reads "
                            f"8-bit RGB, RGBA (alpha dropped), gray or palette PNGs only")
    if image.mode == "P" and "transparency" in image.info:
        raise SamcacheError(f"image {path} is a palette PNG with transparency; save it as RGB")
    return np.asarray(image.convert("RGB") if image.mode != "RGB" else image)


def _integer_plane(path: Path, what: str) -> np.ndarray:
    image = _open_png(path, what)
    if image.mode not in LABEL_MODES:
        raise SamcacheError(f"{what} file {path} has PIL mode {image.mode} ({_describe_mode(image.mode)}); "
                            f"expected a single-channel integer PNG")
    values = np.asarray(image)
    if values.ndim != 2:
        raise SamcacheError(f"{what} file {path} is not a single-channel PNG")
    return values


def _first_bad(values: np.ndarray, ok: np.ndarray) -> str:
    y, x = (int(v[0]) for v in np.nonzero(~ok))
    return f"value {int(values[y, x])} at (x={x}, y={y})"


def read_label_ids(path: str | Path) -> np.ndarray:
    """(H, W) uint8 Cityscapes labelIds; any value outside the official label table is an error."""
    values = _integer_plane(Path(path), "label")
    ok = (values >= 0) & (values < len(_VALID_LABEL))
    ok[ok] = _VALID_LABEL[values[ok]]
    if not ok.all():
        raise SamcacheError(f"label file {path} holds {_first_bad(values, ok)}, which is not a Cityscapes labelId "
                            f"({LABEL_IDS.min()}..{LABEL_IDS.max()})")
    return values.astype(np.uint8)


def read_instance_ids(path: str | Path) -> np.ndarray:
    """(H, W) uint16: labelId for stuff and groups, labelId * 1000 + k for the k-th instance of a thing."""
    values = _integer_plane(Path(path), "instance").astype(np.int64)
    stuff = values < 1000
    ok = values >= 0
    ok[ok & stuff] = _VALID_LABEL[values[ok & stuff]]
    thing = ok & ~stuff
    ok[thing] = (values[thing] // 1000 < len(_VALID_INSTANCE_CLASS)) & \
        _VALID_INSTANCE_CLASS[np.minimum(values[thing] // 1000, len(_VALID_INSTANCE_CLASS) - 1)]
    if not ok.all():
        raise SamcacheError(f"instance file {path} holds {_first_bad(values, ok)}, which is neither a labelId nor "
                            f"labelId*1000+k of a class with instances")
    return values.astype(np.uint16)


def load_example(record: ImageRecord) -> Example:
    """Read one image with its labels, checking that the three files describe the same pixels."""
    image = read_image(record.image_path)
    label_ids = read_label_ids(record.label_path)
    instance_ids = read_instance_ids(record.instance_path)
    for path, plane in ((record.label_path, label_ids), (record.instance_path, instance_ids)):
        if plane.shape != image.shape[:2]:
            raise SamcacheError(f"{path} is {plane.shape[1]}x{plane.shape[0]} but its image is "
                                f"{image.shape[1]}x{image.shape[0]} (WxH)")
    as_label = np.where(instance_ids >= 1000, instance_ids // 1000, instance_ids)
    if not np.array_equal(as_label, label_ids):
        y, x = (int(v[0]) for v in np.nonzero(as_label != label_ids))
        raise SamcacheError(f"{record.instance_path} disagrees with its labelIds at (x={x}, y={y}): instance id "
                            f"{int(instance_ids[y, x])}, labelId {int(label_ids[y, x])}")
    return Example(image, label_ids, instance_ids)


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) from the PNG header, without decoding pixels."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except FileNotFoundError:
        raise SamcacheError(f"missing image file {path}") from None
    except Exception as exc:
        raise SamcacheError(f"cannot read image {path}: {exc}") from None
    return height, width


def _describe_mode(mode: str) -> str:
    return {"I;16": "16-bit gray", "I;16B": "16-bit gray", "I": "32-bit integer", "F": "32-bit float",
            "CMYK": "CMYK", "1": "1-bit", "LA": "gray with alpha", "PA": "palette with alpha",
            "RGB": "8-bit RGB", "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}.get(mode, "unsupported")


def load_item(record: ImageRecord, prepare) -> dict:
    """``load_example`` then ``prepare(image) -> (tensor, input_size)``, for DataLoader workers and Dask
    tasks: a bad file comes back as {"error": one line}, so one image never stops a run."""
    try:
        example = load_example(record)
        image, input_size = prepare(example.image)
        return {"image": image, "input_size": input_size, "labels": example.label_ids,
                "instances": example.instance_ids}
    except SamcacheError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # anything else a broken file can raise inside a worker
        return {"error": f"{record.image_path}: {type(exc).__name__}: {exc}"}
