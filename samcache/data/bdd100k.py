"""BDD100K semantic segmentation (the "10K Images" set) in its official layout:

    <root>/images/10k/<split>/<name>.jpg                 1280x720 JPEG frames (train, val, test)
    <root>/labels/sem_seg/masks/<split>/<name>.png       8-bit masks: train ids 0..18 (Cityscapes' 19 classes,
                                                         in their order), 255 for "unknown", not evaluated

Image ids are the file names without extension. The test split has no public masks. The masks hold no instances
(BDD100K's instance labels are a separate task), so every class is prompted per connected component.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from samcache import fileio
from samcache.data.cityscapes import CLASS_TABLE
from samcache.data.dataset import ClassInfo, Dataset, ImageRecord, unique_ids
from samcache.data.files import save_png
from samcache.errors import SamcacheError

UNKNOWN = 255
# the 19 evaluated classes by train id, as BDD100K's documentation lists them (Cityscapes' names and order)
EVALUATED = sorted((c for c in CLASS_TABLE if not c.ignored), key=lambda c: c.train_id)
CLASSES = tuple(ClassInfo(c.train_id, c.name, c.train_id, c.thing, False, c.name) for c in EVALUATED) + \
    (ClassInfo(UNKNOWN, "unknown", UNKNOWN, False, True),)
TRAIN_ID = np.full(256, UNKNOWN, np.uint8)  # Cityscapes labelId -> train id (synthetic scenes are drawn in labelIds)
for _c in EVALUATED:
    TRAIN_ID[_c.id] = _c.train_id


class BDD100K(Dataset):
    name = "bdd100k"
    title = "BDD100K"
    classes = CLASSES
    void_id = UNKNOWN
    labels_are = "BDD100K sem_seg train ids (0..18: Cityscapes' 19 classes; 255 unknown)"

    def list_images(self, root: str | Path, split: str) -> list[ImageRecord]:
        images = Path(root) / "images" / "10k" / split
        masks = Path(root) / "labels" / "sem_seg" / "masks" / split
        if not images.is_dir():
            raise SamcacheError(f"no BDD100K split directory {images} (expected <data>/images/10k/{split}/*.jpg)")
        if not masks.is_dir():
            raise SamcacheError(f"BDD100K has no semantic masks for split {split}: {masks} is missing (the official "
                                f"masks cover train and val)")
        records = [self.record_for(root, split, p.stem) for p in sorted(images.glob("*.jpg"))]
        if not records:
            raise SamcacheError(f"{images} holds no *.jpg files")
        return unique_ids(records)

    def record_for(self, root: str | Path, split: str, image_id: str) -> ImageRecord:
        return ImageRecord(image_id, Path(root) / "images" / "10k" / split / f"{image_id}.jpg",
                           Path(root) / "labels" / "sem_seg" / "masks" / split / f"{image_id}.png")

    def prediction_file(self, image_id: str) -> str:
        """``<name>.png`` in train ids, as the official masks are named."""
        return f"{image_id}.png"

    def synthetic_id(self, split: str, index: int) -> str:
        """Like BDD100K's names (two groups of hex digits), unique per split."""
        return f"{zlib.crc32(split.encode()):08x}-{index:08x}"

    def write_synthetic(self, root: Path, split: str, image_id: str, index: int, scene) -> None:
        image, labels, _ = scene
        record = self.record_for(root, split, image_id)
        dashcam = np.clip(image.astype(np.float32) * 0.85 + np.array([6, 4, 0]), 0, 255).astype(np.uint8)
        record.image_path.parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        fileio.write_with(record.image_path, lambda tmp: Image.fromarray(dashcam).save(tmp, format="JPEG", quality=90))
        save_png(TRAIN_ID[labels], record.label_path)
