"""Deterministic synthetic street scenes, written in a dataset's exact layout (`samcache synth --dataset`).

Each scene has sky, buildings (with windows), trees, a road with lane marks, sidewalks,
cars and persons as separate instances, and an ego-vehicle strip (void). Every class has
its own colour *and* texture, so a head trained on embeddings has something to learn.
Scenes are drawn in Cityscapes labelIds; each dataset writes them in its own layout and ids
(``Dataset.write_synthetic``). The generator exists to test and demo the pipeline; it is not a
stand-in for any dataset.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import name2label
from skimage.draw import ellipse, polygon
from tqdm import tqdm

from samcache import fileio
from samcache.data.datasets import DEFAULT_DATASET, get_dataset
from samcache.errors import SamcacheError, setting
from samcache.procs import check_interrupt

SYNTH_MARKER = "samcache-synth.json"  # what the folder was written with; marks it as samcache's own
ID = {name: name2label[name].id for name in
      ("ego vehicle", "sky", "building", "vegetation", "road", "sidewalk", "car", "person")}


def _paint(image, labels, rr, cc, label_id, color, rng, noise=8.0):
    image[rr, cc] = np.clip(np.asarray(color, np.float32) + rng.normal(0, noise, (len(rr), 3)), 0, 255)
    labels[rr, cc] = label_id


def _poly(ys, xs, shape):
    return polygon(np.asarray(ys), np.asarray(xs), shape)


def make_scene(seed: int, split: str, index: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image uint8 HxWx3, labelIds uint8 HxW, instanceIds int32 HxW) for scene ``index`` of ``split``."""
    width, height = size
    rng = np.random.default_rng([seed, zlib.crc32(split.encode()), index])
    image = np.zeros((height, width, 3), np.float32)
    labels = np.zeros((height, width), np.uint8)
    things = np.zeros((height, width), np.int32)
    shape = (height, width)
    horizon = int(height * rng.uniform(0.38, 0.5))
    vx = width * rng.uniform(0.4, 0.6)

    # sky: a vertical gradient
    sky_top, sky_bottom = np.array([60, 120, 200]), np.array([170, 200, 235])
    t = (np.arange(horizon) / max(horizon, 1))[:, None, None]
    image[:horizon] = sky_top * (1 - t) + sky_bottom * t + rng.normal(0, 3, (horizon, width, 3))
    labels[:horizon] = ID["sky"]

    # ground: sidewalks everywhere below the horizon, then the road wedge with lane marks
    rr, cc = _poly([horizon, horizon, height, height], [0, width - 1, width - 1, 0], shape)
    _paint(image, labels, rr, cc, ID["sidewalk"], (165, 160, 150), rng, 6)
    tiles = ((rr // max(height // 40, 2)) % 4 == 0) | ((cc // max(width // 40, 2)) % 6 == 0)
    image[rr[tiles], cc[tiles]] *= 0.75
    half = width * 0.02
    rr, cc = _poly([horizon, horizon, height, height], [vx - half, vx + half, width * 1.05, -0.05 * width], shape)
    _paint(image, labels, rr, cc, ID["road"], (85, 85, 90), rng, 10)
    for y0 in range(horizon + height // 20, height, height // 10):  # dashed centre line
        y1 = min(y0 + height // 25, height - 1)
        w0, w1 = (1 + (yy - horizon) * width / 900 / max(height - horizon, 1) for yy in (y0, y1))
        rr, cc = _poly([y0, y0, y1, y1], [vx - w0, vx + w0, vx + w1, vx - w1], shape)
        image[rr, cc] = 235

    # buildings along the horizon, windows as a darker grid
    x = -int(rng.integers(0, width // 10))
    while x < width:
        bw = int(width * rng.uniform(0.08, 0.2))
        top = int(height * rng.uniform(0.05, 0.3))
        bottom = horizon + int(height * 0.03)
        rr, cc = _poly([top, top, bottom, bottom], [x, x + bw, x + bw, x], shape)
        _paint(image, labels, rr, cc, ID["building"], rng.uniform(90, 200, 3), rng, 5)
        win = (((rr - top) % max(height // 30, 4) < max(height // 60, 2))
               & ((cc - x) % max(width // 50, 4) < max(width // 100, 2)))
        image[rr[win], cc[win]] = rng.uniform(20, 60, 3)
        x += bw

    # trees in front of the buildings
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = horizon - height * rng.uniform(0.0, 0.12), width * rng.uniform(0.05, 0.95)
        rr, cc = ellipse(cy, cx, height * rng.uniform(0.08, 0.14), width * rng.uniform(0.03, 0.07), shape)
        _paint(image, labels, rr, cc, ID["vegetation"], (60, 120, 40), rng, 25)

    # things, far to near so that near ones occlude: cars on the road, persons on the sidewalk
    objects = ([("car", k) for k in range(int(rng.integers(1, 5)))]
               + [("person", k) for k in range(int(rng.integers(1, 4)))])
    placed = []
    for name, k in objects:
        y = horizon + (height - horizon) * rng.uniform(0.15, 0.8)
        placed.append((y, name, k))
    for y, name, k in sorted(placed):
        scale = (y - horizon) / max(height - horizon, 1)
        if name == "car":
            w, h = width * (0.05 + 0.2 * scale), height * (0.04 + 0.15 * scale)
            cx = vx + (rng.uniform(-0.6, 0.6)) * (y - horizon) * width / max(height - horizon, 1) * 0.5
            rr, cc = _poly([y - h, y - h, y, y], [cx - w / 2, cx + w / 2, cx + w / 2, cx - w / 2], shape)
            roof_r, roof_c = _poly([y - 1.5 * h, y - 1.5 * h, y - h, y - h],
                                   [cx - w / 3, cx + w / 3, cx + w / 2.2, cx - w / 2.2], shape)
            rr, cc = np.concatenate([rr, roof_r]), np.concatenate([cc, roof_c])
            _paint(image, labels, rr, cc, ID["car"], rng.uniform(20, 230, 3), rng, 6)
            glass = (rr < y - h) & (rr > y - 1.4 * h)
            image[rr[glass], cc[glass]] = (40, 50, 60)
        else:
            w, h = width * (0.006 + 0.02 * scale), height * (0.06 + 0.25 * scale)
            side = -1 if rng.random() < 0.5 else 1
            cx = vx + side * (y - horizon) * width / max(height - horizon, 1) * rng.uniform(0.6, 0.9)
            cx = float(np.clip(cx, w, width - w))
            rr, cc = _poly([y - 0.8 * h, y - 0.8 * h, y, y], [cx - w, cx + w, cx + w, cx - w], shape)
            hr, hc = ellipse(y - 0.88 * h, cx, 0.09 * h, 0.8 * w, shape)
            _paint(image, labels, rr, cc, ID["person"], rng.uniform(20, 90, 3), rng, 8)
            _paint(image, labels, hr, hc, ID["person"], (215, 170, 140), rng, 6)
            rr, cc = np.concatenate([rr, hr]), np.concatenate([cc, hc])
        things[rr, cc] = ID[name] * 1000 + k

    ego = height - max(height // 16, 2)
    labels[ego:] = ID["ego vehicle"]
    image[ego:] = 25 + rng.normal(0, 2, (height - ego, width, 3))
    things[ego:] = 0
    instances = np.where(things > 0, things, labels.astype(np.int32))
    return np.clip(image, 0, 255).astype(np.uint8), labels, instances


def read_marker(root: str | Path) -> dict | None:
    """The parameters a synthetic folder was written with, or None if samcache did not write it."""
    path = Path(root) / SYNTH_MARKER
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _describe(marker: dict) -> str:
    splits = ", ".join(f"{k} {v}" for k, v in marker.get("splits", {}).items())
    width, height = marker.get("size", ("?", "?"))
    return f"{splits} at {width}x{height}, seed {marker.get('seed')}, {marker.get('dataset', DEFAULT_DATASET)} layout"


def _remove_scenes(root: Path, held: dict) -> None:
    """Delete the files an earlier write_synthetic made (by their names) and its marker; nothing else."""
    dataset = get_dataset(held.get("dataset", DEFAULT_DATASET))
    ids = {split: [dataset.synthetic_id(split, i) for i in range(int(n))]
           for split, n in held.get("splits", {}).items()}
    paths = [p for split, names in ids.items() for i in names for p in dataset.synthetic_files(root, split, i)]
    for path in paths + [root / name for name in dataset.synthetic_index_files]:
        path.unlink(missing_ok=True)
        if path.parent.is_dir():
            for tmp in path.parent.glob(f".{path.name}.*.tmp"):  # killed writes of ours
                tmp.unlink(missing_ok=True)
    for folder in sorted((d for d in root.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    (root / SYNTH_MARKER).unlink(missing_ok=True)


def write_synthetic(root: str | Path, splits: dict[str, int], size: tuple[int, int] = (2048, 1024), seed: int = 0,
                    progress: bool = True, overwrite: bool = False, dataset: str = DEFAULT_DATASET) -> list[Path]:
    """Write ``splits`` ({split: n_images}) under ``root`` in ``dataset``'s layout; returns the image paths.

    Refuses a non-empty folder that samcache did not create (synthetic scenes must never mix
    into a real dataset), and a synthetic folder written with other settings unless ``overwrite``
    (which first removes every scene that folder holds: one folder, one layout, one size). Every file is written
    atomically and scenes are deterministic, so a killed run is completed by running it again.
    """
    root = Path(root)
    layout = get_dataset(dataset)
    marker = {"splits": dict(splits), "size": list(size), "seed": seed, "dataset": dataset}
    held = read_marker(root)
    if root.is_file() or (root.is_dir() and any(root.iterdir()) and held is None):
        raise SamcacheError(f"{root} exists and is not a samcache synthetic folder; choose an empty or new folder")
    written = {**{"dataset": DEFAULT_DATASET}, **(held or {})}  # markers before datasets: Cityscapes
    resume = held is not None and {k: written.get(k) for k in marker} == marker
    if held is not None and not resume:
        if not overwrite:
            raise SamcacheError(f"{root} holds synthetic data ({_describe(held)}); this asks for {_describe(marker)}; "
                                f"pass {setting('overwrite')} to replace it (caches made from it become stale), or "
                                f"choose another folder")
        _remove_scenes(root, held)
    root.mkdir(parents=True, exist_ok=True)
    fileio.write_text(root / SYNTH_MARKER, json.dumps({**marker, "complete": False}))
    paths, ids = [], {}
    bar = tqdm(total=sum(splits.values()), unit="img", desc="synth", disable=not progress)
    for split, n in splits.items():
        ids[split] = []
        for i in range(n):
            check_interrupt()
            image_id = layout.synthetic_id(split, i)
            files = layout.synthetic_files(root, split, image_id)
            if not (resume and all(p.is_file() for p in files)):
                scene = make_scene(seed, split, i, layout.synthetic_size(i, size))
                layout.write_synthetic(root, split, image_id, i, scene)
            ids[split].append(image_id)
            paths.append(files[0])
            bar.update(1)
    bar.close()
    layout.write_synthetic_index(root, ids)
    fileio.write_text(root / SYNTH_MARKER, json.dumps({**marker, "complete": True}))
    return paths
