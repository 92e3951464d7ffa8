"""Predictions in the layout cityscapesScripts' evaluation reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from samcache import fileio


def save_prediction(predictions_dir: Path, image_id: str, label_ids: np.ndarray) -> None:
    """``<dir>/<city>/<image_id>_labelIds.png``, the layout cityscapesScripts' evaluation expects."""
    city = image_id.rsplit("_", 2)[0]
    (predictions_dir / city).mkdir(parents=True, exist_ok=True)
    fileio.write_with(predictions_dir / city / f"{image_id}_labelIds.png",
                      lambda tmp: Image.fromarray(label_ids).save(tmp, format="PNG"))
