"""A dataset that is not samcache's, added the way docs/datasets.md says: one module (a ``Dataset`` subclass: its
layout, class table and readers) and one ``register(DatasetEntry(...))``. Its layout, label values and void id all
differ from every built-in dataset's, so any stage that names a dataset, a path or an id encoding fails on it.

    <root>/<split>/pictures/<id>.png     RGB
    <root>/<split>/masks/<id>.png        7 void, 1 street, 2 vehicle, 3 heaven
"""

from pathlib import Path

from samcache.data.dataset import ClassInfo, Dataset, ImageRecord, unique_ids
from samcache.data.datasets import DatasetEntry, register
from samcache.errors import SamcacheError

CLASSES = (ClassInfo(1, "street", 0, False, False, "road"), ClassInfo(2, "vehicle", 1, True, False, "car"),
           ClassInfo(3, "heaven", 2, False, False, "sky"), ClassInfo(7, "void", 255, False, True))


class ToySet(Dataset):
    name = "toyset"
    title = "ToySet"
    classes = CLASSES
    void_id = 7
    labels_are = "ToySet ids: 1 street, 2 vehicle, 3 heaven, 7 void"

    def list_images(self, root, split):
        folder = Path(root) / split / "pictures"
        if not folder.is_dir():
            raise SamcacheError(f"no ToySet split directory {folder}")
        return unique_ids([self.record_for(root, split, p.stem) for p in sorted(folder.glob("*.png"))])

    def record_for(self, root, split, image_id):
        return ImageRecord(image_id, Path(root) / split / "pictures" / f"{image_id}.png",
                           Path(root) / split / "masks" / f"{image_id}.png")


def register_toyset() -> None:
    register(DatasetEntry("toyset", "toy_dataset:ToySet"))
