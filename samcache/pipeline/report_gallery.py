"""report.html's gallery: per image, the picture, its ground truth and every run's label map, with the image's
score per run.

The gallery is about one split and class set, the first gallery run's; runs of another split or class set are
named and left out. Images: every image a member run scored, worst first by the first run's score, up to
``--gallery``. A label map is the run's saved prediction (``predictions/``) where it has one, else the run's
own decoding replayed on that image from the cache (``report_replay``), which the page says. Pictures are
small PNG (label maps, in Cityscapes' colours) and JPEG (photos) thumbnails, inlined as data URIs.
"""

from __future__ import annotations

import base64
import io
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from samcache.cache.reader import open_cache
from samcache.data.labels import OTHER, get_class_set
from samcache.errors import SamcacheError, SamcacheWarning
from samcache.evaluation.visualize import source_image
from samcache.pipeline.stage_registry import stage_of

THUMB_WIDTH = 384  # pixels: sharp at the page's largest panel size, ~5 KB a label map


@dataclass
class GalleryRun:
    """A run's column: its label, per-image scores, what they are, and where its label maps come from."""

    label: str
    run_dir: Path
    record: dict
    scores: dict[str, float]
    score: str
    source: str = "saved predictions"


@dataclass
class Gallery:
    split: str
    class_set: object  # data.labels.ClassSet
    runs: list[GalleryRun]
    items: list[dict] = field(default_factory=list)  # id, classes, scores {label: float|None}, pictures
    left_out: list[str] = field(default_factory=list)  # runs not in the gallery, and why
    images_scored: int = 0


def data_uri(image: Image.Image, kind: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **({"quality": 82} if kind == "JPEG" else {"optimize": True}))
    mime = "jpeg" if kind == "JPEG" else "png"
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _size(shape) -> tuple[int, int]:
    h, w = shape[:2]
    width = min(THUMB_WIDTH, w)
    return width, max(1, round(h * width / w))


def label_thumbnail(index_map: np.ndarray, class_set) -> str:
    """Class indices (IGNORE: void, black) -> a palette PNG in Cityscapes' colours."""
    palette = np.zeros((256, 3), np.uint8)
    for i in range(class_set.num_classes):
        palette[i] = class_set.color(i)
    image = Image.fromarray(index_map.astype(np.uint8), "P")
    image.putpalette(palette.reshape(-1).tolist())
    return data_uri(image.resize(_size(index_map.shape), Image.NEAREST))


def photo_thumbnail(rgb: np.ndarray) -> str:
    return data_uri(Image.fromarray(rgb).resize(_size(rgb.shape), Image.LANCZOS), "JPEG")


def prediction_path(folder: Path, image_id: str, dataset) -> Path:
    """Where ``evaluation.predictions.save_prediction`` puts an image's prediction PNG (the dataset's label ids)."""
    return Path(folder) / "predictions" / dataset.prediction_file(image_id)


def _members(dirs, records, labels, provs) -> tuple[list[GalleryRun], list[str], str | None, str | None]:
    runs, left_out, split, classes = [], [], None, None
    for d, r, label, prov in zip(dirs, records, labels, provs):
        declared = stage_of(r["stage"]).gallery
        if declared is None:
            left_out.append(f"{label}: its stage ({r['stage']}) has no per-image results")
            continue
        if split is None:
            split, classes, dataset = prov["split"], r["classes"], prov.get("dataset")
        if (prov["split"], r["classes"], prov.get("dataset")) != (split, classes, dataset):
            on = f"dataset {prov['dataset']}, " if prov.get("dataset") != dataset else ""
            left_out.append(f"{label}: {on}split {prov['split']}, class set {r['classes']} (the gallery shows "
                            f"split {split}, class set {classes})")
            continue
        runs.append(GalleryRun(label, Path(d), r, declared.scores(Path(d)), declared.score(r)))
    return runs, left_out, split, classes


def _order(runs: list[GalleryRun], ids: list[str], limit: int) -> tuple[list[str], int]:
    """Images any run scored, worst first by the first run (those it did not score after them, in split order)."""
    scored = {i for run in runs for i in run.scores} or set(ids)
    position = {image_id: k for k, image_id in enumerate(ids)}
    candidates = [i for i in ids if i in scored]
    first = runs[0].scores
    candidates.sort(key=lambda i: (i not in first, first.get(i, 0.0), position[i]))
    return candidates[:limit], len(candidates)


def _label_maps(run: GalleryRun, ids: list[str], class_set, scratch: Path) -> dict[str, np.ndarray]:
    """Saved predictions, and the rest replayed from the cache (``run.source`` says which)."""
    wanted = [i for i in ids if not run.scores or i in run.scores]
    missing = [i for i in wanted if not prediction_path(run.run_dir, i, class_set.source).is_file()]
    folder = {i: run.run_dir for i in wanted}
    replay = stage_of(run.record["stage"]).gallery.replay
    if not wanted:
        run.source = "it scored none of these images"
    elif missing and replay is None:
        run.source = "saved predictions only (this stage is not replayed)"
    elif missing:
        where = Path(tempfile.mkdtemp(dir=scratch))
        try:
            replay(run.run_dir, run.record, missing, where)
            folder.update({i: where for i in missing})
            run.source = ("recomputed by the report from the cache (no encoder pass): the run saved no predictions"
                          if len(missing) == len(wanted) else
                          f"saved predictions; {len(missing)} recomputed by the report from the cache (no encoder pass)")
        except Exception as exc:  # a side product: the report stands without it (never KeyboardInterrupt)
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            warnings.warn(f"report gallery: no label maps of {run.label} ({reason})", SamcacheWarning)
            run.source = f"unavailable: {reason}"
    other = class_set.class_names.index(OTHER) if OTHER in class_set.class_names else None
    fill = other is not None and stage_of(run.record["stage"]).gallery.labels_every_pixel
    maps = {}
    for image_id, base in folder.items():
        path = prediction_path(base, image_id, class_set.source)
        if path.is_file():
            with Image.open(path) as png:
                label_ids = np.asarray(png)
            maps[image_id] = class_set.to_index(label_ids)
            if fill:  # a head's "other", saved as the dataset's void
                maps[image_id][label_ids == class_set.source.void_id] = other
    return maps


def build_gallery(dirs, records, labels, provs, limit: int) -> tuple[Gallery | None, str]:
    """The gallery of these runs, or None and why not (``--gallery 0``, no run with per-image results, or a
    cache that cannot be read: the report stands without its gallery)."""
    runs, left_out, split_name, classes = _members(dirs, records, labels, provs)
    if limit <= 0:
        return None, "No gallery (--gallery 0)."
    if not runs:
        return None, "No gallery: no run keeps per-image results."
    try:
        split = open_cache(str(runs[0].record["cache"])).split(split_name)
    except SamcacheError as exc:
        warnings.warn(f"report gallery left out: {exc}", SamcacheWarning)
        return None, f"No gallery: {exc}"
    class_set = get_class_set(classes, split.dataset)  # read in the split's own label ids
    done = set(split.require_complete())
    ids = [i for row, i in enumerate(split.image_ids) if row in done]
    chosen, scored = _order(runs, ids, limit)
    gallery = Gallery(split_name, class_set, runs, left_out=left_out, images_scored=scored)
    with tempfile.TemporaryDirectory(prefix="samcache-gallery-") as scratch:
        maps = {run.label: _label_maps(run, chosen, class_set, Path(scratch)) for run in runs}
    for image_id in chosen:
        gt = class_set.to_index(split.label_ids(image_id))
        rgb = source_image(split, image_id)
        present = [class_set.class_names[c] for c in class_set.eval_indices if (gt == c).any()]
        gallery.items.append({
            "id": image_id, "classes": present,
            "scores": {run.label: run.scores.get(image_id) for run in runs},
            "image": photo_thumbnail(rgb) if rgb is not None and rgb.shape[:2] == gt.shape else None,
            "gt": label_thumbnail(gt, class_set),
            "maps": {run.label: label_thumbnail(maps[run.label][image_id], class_set)
                     if image_id in maps[run.label] else None for run in runs}})
    return gallery, ""


def legend(class_set) -> list[tuple[str, tuple]]:
    """(name, colour) of every class of the set, then void."""
    return [(n, class_set.color(i)) for i, n in enumerate(class_set.class_names)] + [("void / no label", (0, 0, 0))]
