"""Reader for the official Cityscapes layout.

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png   (+ _instanceIds, _color)

Images are listed in sorted order of image id ``<city>_<seq>_<frame>``, so row numbers in
the cache are stable across runs and machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from samcache.errors import SamcacheError

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
COLOR_SUFFIX = "_gtFine_color.png"


@dataclass(frozen=True)
class ImageRecord:
    image_id: str
    city: str
    image_path: Path
    label_path: Path
    instance_path: Path


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
    ids = sorted(p.name[: -len(IMAGE_SUFFIX)] for p in image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    if not ids:
        raise SamcacheError(f"{image_dir} holds no *{IMAGE_SUFFIX} files")
    return [record_for(root, split, i) for i in ids]


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
    """(H, W, 3) uint8 RGB."""
    return np.asarray(_open_png(Path(path), "image").convert("RGB"))


def read_label_ids(path: str | Path) -> np.ndarray:
    """(H, W) uint8 Cityscapes labelIds."""
    labels = np.asarray(_open_png(Path(path), "label"))
    if labels.ndim != 2:
        raise SamcacheError(f"label file {path} is not a single-channel labelIds PNG")
    return labels.astype(np.uint8, copy=False)


def read_instance_ids(path: str | Path) -> np.ndarray:
    """(H, W) int32: labelId for stuff, labelId * 1000 + k for the k-th instance of a thing."""
    instances = np.asarray(_open_png(Path(path), "instance"))
    if instances.ndim != 2:
        raise SamcacheError(f"instance file {path} is not a single-channel instanceIds PNG")
    return instances.astype(np.int32)


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
