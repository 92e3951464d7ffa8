"""Prediction PNGs in the dataset's label ids, where the dataset puts them (Cityscapes: the layout
cityscapesScripts' evaluation reads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from samcache import fileio
from samcache.data.dataset import Dataset


def save_prediction(predictions_dir: Path, image_id: str, label_ids: np.ndarray, dataset: Dataset) -> None:
    """``<dir>/<dataset.prediction_file(image_id)>`` (Cityscapes: ``<city>/<image_id>_labelIds.png``)."""
    path = Path(predictions_dir) / dataset.prediction_file(image_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fileio.write_with(path, lambda tmp: Image.fromarray(label_ids).save(tmp, format="PNG"))
