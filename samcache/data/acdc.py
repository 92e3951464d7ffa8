"""ACDC (Adverse Conditions Dataset with Correspondences, Sakaridis et al.) in its official layout, Cityscapes-style
per condition:

    <root>/rgb_anon/<condition>/<split>/<sequence>/<sequence>_frame_<n>_rgb_anon.png    1920x1080 frames
    <root>/gt/<condition>/<split>/<sequence>/<sequence>_frame_<n>_gt_labelIds.png      Cityscapes labelIds

for the conditions fog, night, rain and snow (``--condition``, default all four). Image ids are
``<sequence>_frame_<n>``. The ``<split>_ref`` folders (the same places in normal conditions) are not read; the
test split has no public ground truth. Labels use Cityscapes' label table; the semantic ground truth holds no
instances (ACDC's are in its panoptic release).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from samcache.data.cityscapes import CLASS_TABLE, cityscapes_records
from samcache.data.dataset import Dataset, ImageRecord, unique_ids
from samcache.data.files import save_png
from samcache.errors import SamcacheError

CONDITIONS = ("fog", "night", "rain", "snow")
IMAGE_SUFFIX = "_rgb_anon.png"
LABEL_SUFFIX = "_gt_labelIds.png"


def _weather(image: np.ndarray, condition: str, seed: int) -> np.ndarray:
    """A synthetic scene as if seen in ``condition`` (a crude look, enough to shift the pixels' statistics)."""
    rng = np.random.default_rng(seed)
    x = image.astype(np.float32)
    if condition == "fog":
        x = 0.45 * x + 0.55 * 200.0
    elif condition == "night":
        x = 0.3 * x + rng.normal(0, 4, x.shape)
    elif condition == "rain":
        x = 0.75 * x * np.array([0.9, 0.95, 1.05])
        streaks = rng.random(x.shape[:2]) < 0.01
        x[streaks] = 220
    else:  # snow
        x = 0.8 * x + 45
        x[rng.random(x.shape[:2]) < 0.02] = 255
    return np.clip(x, 0, 255).astype(np.uint8)


class ACDC(Dataset):
    name = "acdc"
    title = "ACDC"
    classes = CLASS_TABLE
    void_id = 0  # unlabeled
    labels_are = "Cityscapes labelIds (ACDC's gt_labelIds)"
    conditions = ("all", *CONDITIONS)

    def chosen(self) -> tuple[str, ...]:
        return CONDITIONS if self.condition == "all" else (self.condition,)

    def list_images(self, root: str | Path, split: str) -> list[ImageRecord]:
        if split.endswith("_ref"):
            raise SamcacheError(f"ACDC's {split} folders hold the reference images (normal conditions) without ground "
                                f"truth; choose train or val")
        records = []
        for condition in self.chosen():
            images = Path(root) / "rgb_anon" / condition / split
            if not images.is_dir():
                raise SamcacheError(f"no ACDC split directory {images} (expected <data>/rgb_anon/{condition}/{split}/"
                                    f"<sequence>/*{IMAGE_SUFFIX})")
            labels = Path(root) / "gt" / condition / split
            if not labels.is_dir():
                raise SamcacheError(f"ACDC has no ground truth for {condition}/{split}: {labels} is missing (the "
                                    f"public ground truth covers train and val)")
            records += cityscapes_records(images, labels, IMAGE_SUFFIX, LABEL_SUFFIX, None, self.title)
        return unique_ids(records)

    def record_for(self, root: str | Path, split: str, image_id: str) -> ImageRecord:
        """The image's condition is the one whose folder holds it (ids do not name it)."""
        records = [self._record(Path(root), c, split, image_id) for c in self.chosen()]
        return next((r for r in records if r.image_path.is_file()), records[0])

    @staticmethod
    def _record(root: Path, condition: str, split: str, image_id: str) -> ImageRecord:
        sequence = image_id.split("_frame_")[0]
        return ImageRecord(image_id, root / "rgb_anon" / condition / split / sequence / f"{image_id}{IMAGE_SUFFIX}",
                           root / "gt" / condition / split / sequence / f"{image_id}{LABEL_SUFFIX}", None, sequence)

    def prediction_file(self, image_id: str) -> str:
        return f"{image_id.split('_frame_')[0]}/{image_id}_labelIds.png"

    def synthetic_id(self, split: str, index: int) -> str:
        """Scenes go round the four conditions; one sequence per condition and split, as GOPRnnnn names them."""
        condition = CONDITIONS[index % len(CONDITIONS)]
        return f"GOPR{CONDITIONS.index(condition):02d}{split[:2].upper()}_frame_{index:06d}"

    def _synthetic_record(self, root: Path, split: str, image_id: str) -> ImageRecord:
        return self._record(root, CONDITIONS[int(image_id.rsplit("_", 1)[1]) % len(CONDITIONS)], split, image_id)

    def synthetic_files(self, root: Path, split: str, image_id: str) -> list[Path]:
        record = self._synthetic_record(Path(root), split, image_id)
        return [record.image_path, record.label_path]

    def write_synthetic(self, root: Path, split: str, image_id: str, index: int, scene) -> None:
        image, labels, _ = scene
        record = self._synthetic_record(Path(root), split, image_id)
        condition = CONDITIONS[index % len(CONDITIONS)]
        save_png(_weather(image, condition, index), record.image_path)
        save_png(labels, record.label_path)
