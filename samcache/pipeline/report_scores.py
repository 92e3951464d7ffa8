"""Each image's score of a run, from the files the run kept: the gallery ranks images without running anything.

A score is the mean of the image's per-class (or per-object) IoUs that the run wrote; a run recorded before it
kept them (a head run without per_image.csv) has none, and the gallery shows it without a score.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from samcache.pipeline.runs import PER_IMAGE, read_csv


def _means(pairs) -> dict[str, float]:
    """(image id, value) pairs -> {image id: mean of its finite values}."""
    values: dict[str, list[float]] = {}
    for image_id, value in pairs:
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            values.setdefault(image_id, []).append(value)
    return {k: sum(v) / len(v) for k, v in values.items()}


def _rows(path: Path) -> list[dict]:
    return read_csv(path) if path.is_file() else []


def zero_shot_scores(run_dir: Path) -> dict[str, float]:
    return _means((r["image_id"], r["iou"]) for r in _rows(Path(run_dir) / "detailed_results.csv"))


def head_scores(run_dir: Path) -> dict[str, float]:
    return _means((r["image_id"], r["iou"]) for r in _rows(Path(run_dir) / PER_IMAGE))


def clicks_scores(run_dir: Path) -> dict[str, float]:
    return _means((r["image_id"], (json.loads(r["ious"]) or [math.nan])[-1])
                  for r in _rows(Path(run_dir) / "per_object.csv"))
