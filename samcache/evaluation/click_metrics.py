"""Interactive-segmentation metrics from per-object IoU curves (RITM / SimpleClick / SAM).

An object's curve is its IoU after click 1, 2, ..., max_clicks (``samcache.evaluation.clicks``
places the clicks). From the curves:
- mIoU@k:  mean IoU after k clicks;
- NoC@t:   clicks needed to reach IoU >= t, counted as ``max_clicks`` if never reached, averaged
           over objects: RITM's convention (``isegm/inference/utils.py`` ``compute_noc_metric``),
           which published NoC tables follow;
- NoF@t:   number of objects that never reach IoU >= t within ``max_clicks``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

ALL = "all"
DEFAULT_KS = (1, 2, 3, 5, 9, 20)
DEFAULT_NOC_THRESHOLDS = (0.80, 0.85, 0.90)
DEFAULT_NOF_THRESHOLDS = (0.85, 0.90)


@dataclass
class ObjectIoUs:
    """One object's IoU curve; a dict ``{"class": name, "ious": [...]}`` is accepted as well."""

    class_name: str
    ious: Sequence[float]  # IoU after click 1, 2, ...


def clicks_to_reach(ious: Sequence[float], threshold: float, max_clicks: int) -> int | None:
    """Number of clicks until IoU >= threshold, looking at the first max_clicks; None if never."""
    for k, value in enumerate(list(ious)[:max_clicks], start=1):
        if value >= threshold:
            return k
    return None


def noc(ious: Sequence[float], threshold: float, max_clicks: int) -> int:
    """NoC of one object: clicks until IoU >= threshold, ``max_clicks`` if never (RITM's convention)."""
    reached = clicks_to_reach(ious, threshold, max_clicks)
    return max_clicks if reached is None else reached


def _fields(obj: Any) -> tuple[str, Sequence[float]]:
    if isinstance(obj, dict):
        return obj["class"] if "class" in obj else obj["class_name"], obj["ious"]
    return obj.class_name, obj.ious


def _curve(ious: Sequence[float], max_clicks: int) -> np.ndarray:
    """The first max_clicks IoUs; a shorter curve is padded with its last value (the click loop
    stops early when ``next_click`` finds no error left, and then the mask no longer changes)."""
    values = np.asarray(list(ious)[:max_clicks], dtype=np.float64)
    if values.size == 0:
        raise ValueError("an object has an empty IoU curve (click 1 is always made)")
    return np.concatenate([values, np.full(max_clicks - values.size, values[-1])])


def _percent(threshold: float) -> str:
    return f"{round(threshold * 100)}"


def _row(name: str, curves: np.ndarray, max_clicks: int, ks: Iterable[int],
         noc_thresholds: Iterable[float], nof_thresholds: Iterable[float]) -> dict:
    n = len(curves)
    mean = lambda values: float(np.mean(values)) if n else float("nan")  # noqa: E731
    row: dict = {"class": name, "objects": n}
    for k in ks:
        if k <= max_clicks:
            row[f"miou@{k}"] = mean(curves[:, k - 1])
    for t in noc_thresholds:
        row[f"noc@{_percent(t)}"] = mean([noc(c, t, max_clicks) for c in curves])
    for t in nof_thresholds:
        row[f"nof@{_percent(t)}"] = sum(clicks_to_reach(c, t, max_clicks) is None for c in curves)
    return row


def summarize(objects: Iterable[Any], class_names: Sequence[str], max_clicks: int,
              ks: Sequence[int] = DEFAULT_KS, noc_thresholds: Sequence[float] = DEFAULT_NOC_THRESHOLDS,
              nof_thresholds: Sequence[float] = DEFAULT_NOF_THRESHOLDS) -> list[dict]:
    """One row per class of ``class_names`` (in that order), then an ``all`` row.

    ``objects``: ``ObjectIoUs`` records or dicts with ``class`` and ``ious``. Columns:
    ``class``, ``objects``, ``miou@k`` (only k <= max_clicks), ``noc@80`` ... (means over
    objects), ``nof@85`` ... (counts). The ``all`` row pools every object, so it is the mean
    over objects (large classes weigh more), not the mean of the class rows. A class with no
    object gets ``objects = 0``, NaN means and zero counts.
    """
    curves: dict[str, list[np.ndarray]] = {name: [] for name in class_names}
    for obj in objects:
        name, ious = _fields(obj)
        ious = json.loads(ious) if isinstance(ious, str) else ious
        if name not in curves:
            raise ValueError(f"object of class {name!r}, which is not in {list(class_names)}")
        curves[name].append(_curve(ious, max_clicks))
    as_array = lambda cs: np.array(cs).reshape(len(cs), max_clicks)  # noqa: E731
    args = (max_clicks, ks, noc_thresholds, nof_thresholds)
    rows = [_row(name, as_array(curves[name]), *args) for name in class_names]
    rows.append(_row(ALL, as_array([c for name in class_names for c in curves[name]]), *args))
    return rows


def miou_curve(objects: Iterable[Any], class_names: Sequence[str], max_clicks: int) -> dict[str, list[float]]:
    """mIoU after k = 1..max_clicks clicks, per class and for ``all`` (the mean over objects)."""
    curves: dict[str, list[np.ndarray]] = {name: [] for name in class_names}
    for obj in objects:
        name, ious = _fields(obj)
        curves[name].append(_curve(ious if not isinstance(ious, str) else json.loads(ious), max_clicks))
    every = [c for name in class_names for c in curves[name]]
    out = {name: np.mean(cs, axis=0).tolist() for name, cs in curves.items() if cs}
    if every:
        out[ALL] = np.mean(every, axis=0).tolist()
    return out
