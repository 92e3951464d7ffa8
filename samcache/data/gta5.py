"""GTA5 ("Playing for Data", Richter et al., ECCV 2016) in its official layout:

    <root>/images/<nnnnn>.png    RGB frames of the game; most 1914x1052, some of other sizes
    <root>/labels/<nnnnn>.png    palette PNGs whose indices are Cityscapes labelIds (the palette: their colours)
    <root>/split.mat             trainIds, valIds, testIds: the image numbers (1-based) of each split

Image ids are the five-digit numbers (``00001``). The split file is a MATLAB file, read with scipy.io (v7.3 files,
which are HDF5, with h5py). Labels use Cityscapes' label table; GTA5 has no instance files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from samcache.data.cityscapes import CLASS_TABLE, COLORS
from samcache.data.dataset import Dataset, ImageRecord
from samcache.data.files import save_png
from samcache.errors import SamcacheError

SPLIT_FILE = "split.mat"


def read_split_file(path: Path) -> dict[str, np.ndarray]:
    """{'train': ids, 'val': ids, 'test': ids} from ``split.mat`` (``<split>Ids`` arrays of image numbers)."""
    if not path.is_file():
        raise SamcacheError(f"missing GTA5 split file {path} (the official split.mat: trainIds, valIds, testIds)")
    try:
        import scipy.io

        content = scipy.io.loadmat(str(path))
    except NotImplementedError:  # a v7.3 MAT file is HDF5
        import h5py

        with h5py.File(path, "r") as f:
            content = {k: np.asarray(f[k]) for k in f.keys()}
    except Exception as exc:
        raise SamcacheError(f"cannot read GTA5 split file {path}: {exc}") from None
    splits = {k[: -len("Ids")]: np.asarray(v).ravel() for k, v in content.items()
              if k.endswith("Ids") and not k.startswith("__")}
    if not splits:
        raise SamcacheError(f"GTA5 split file {path} holds no <split>Ids arrays (expected trainIds, valIds, testIds)")
    return splits


class GTA5(Dataset):
    name = "gta5"
    title = "GTA5"
    classes = CLASS_TABLE
    void_id = 0  # unlabeled
    labels_are = "Cityscapes labelIds (GTA5's palette indices)"
    synthetic_index_files = (SPLIT_FILE,)

    def list_images(self, root: str | Path, split: str) -> list[ImageRecord]:
        path = Path(root) / SPLIT_FILE
        splits = read_split_file(path)
        if split not in splits:
            raise SamcacheError(f"GTA5 has no split {split!r}: {path} lists {', '.join(sorted(splits))}")
        numbers = splits[split]
        if numbers.size and (not np.all(numbers == np.round(numbers)) or numbers.min() < 1):
            raise SamcacheError(f"{path}: {split}Ids holds values that are not image numbers (1, 2, ...)")
        ids = sorted({f"{int(n):05d}" for n in numbers})
        if not ids:
            raise SamcacheError(f"{path}: {split}Ids is empty")
        records = [self.record_for(root, split, image_id) for image_id in ids]
        for record in records:
            if not record.image_path.is_file():
                raise SamcacheError(f"{path} lists image {record.image_id} of split {split}, but {record.image_path} "
                                    f"is missing")
        return records

    def record_for(self, root: str | Path, split: str, image_id: str) -> ImageRecord:
        return ImageRecord(image_id, Path(root) / "images" / f"{image_id}.png",
                           Path(root) / "labels" / f"{image_id}.png")

    def synthetic_id(self, split: str, index: int) -> str:
        """Numbers run across splits, as in the official set: train first, then val, then test."""
        first = {"train": 1, "val": 20001, "test": 40001}.get(split, 60001)
        return f"{first + index:05d}"

    def synthetic_size(self, index: int, size: tuple[int, int]) -> tuple[int, int]:
        """Every third scene is 3/4 of the size asked for: GTA5's frames are not all of one size."""
        width, height = size
        return (width * 3 // 4, height * 3 // 4) if index % 3 == 2 else (width, height)

    def write_synthetic(self, root: Path, split: str, image_id: str, index: int, scene) -> None:
        image, labels, _ = scene
        record = self.record_for(root, split, image_id)
        game = np.clip((image.astype(np.float32) - 128) * 1.25 + 136, 0, 255).astype(np.uint8)  # a saturated look
        save_png(game, record.image_path)
        save_png(labels, record.label_path, palette=COLORS)

    def write_synthetic_index(self, root: Path, ids: dict[str, list[str]]) -> None:
        import scipy.io

        from samcache import fileio

        arrays = {f"{split}Ids": np.array([[int(i)] for i in ids.get(split, [])], np.float64).reshape(-1, 1)
                  for split in ("train", "val", "test")}
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                scipy.io.savemat(f, arrays)

        fileio.write_with(Path(root) / SPLIT_FILE, write)
