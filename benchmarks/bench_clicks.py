"""Phase 1, interactive: `samcache clicks` against a loop of upstream SamPredictor.predict, in one run.

Both run the same protocol (center first click, best-score first mask, mask_input, next click by
RITM's rule) on the same cached float32 embeddings of synthetic 2048x1024 scenes, with the tiny
model (its prompt encoder and mask decoder are SAM's real ones; the weights are RANDOM, which
changes the clicks but not the cost per click). The upstream side is the straightforward script:
per object, per click, ``predict`` (all masks upsampled), IoU and the next click on the host.
Both sides are timed with torch on 1 thread and on 2 threads, each pair back to back.

Then: where samcache's time goes (decoder, placement, upsampling, IoU, objects + I/O, the rest)
as shares of one profiled run, and click placement alone on recorded rounds: scipy on the host
against ``evaluation.placement`` (the device implementation, here on CPU tensors).
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager

import numpy as np
import torch
from segment_anything import SamPredictor

from benchmarks.common import OUT, synth_data, timer
from samcache.cache.reader import open_cache
from samcache.data.labels import IGNORE, get_class_set
from samcache.evaluation.clicks import first_click, iou, next_click, objects_for_image
from samcache.evaluation.placement import place_clicks
from samcache.features.sam1.build import build_random_sam
from samcache.pipeline.clicks import run_clicks
from samcache.pipeline.configs import ClicksConfig, ExtractConfig
from samcache.pipeline.extract import extract

IMAGES, MAX_CLICKS = 3, 5


def _cache() -> str:
    data = synth_data(8, IMAGES)
    cache = OUT / "bench_clicks.zarr"
    if not (cache / "val").exists():
        shutil.rmtree(cache, ignore_errors=True)
        extract(ExtractConfig(data=str(data), cache=str(cache), split="val", model_type="tiny", device="cpu",
                              dtype="float32", num_workers=1), progress=False)
    return str(cache)


def upstream_loop(cache: str, record: list | None = None) -> tuple[int, float]:
    """The seed-style script: one SamPredictor.predict per object per click. ``record`` collects the
    placement rounds (prediction, object, valid, clicks so far) for the placement-alone rows."""
    split = open_cache(cache).split("val")
    cs, sam = get_class_set("seed5"), build_random_sam("tiny", 0)
    clicks = 0
    with timer() as t:
        for row in range(IMAGES):
            predictor = SamPredictor(sam)
            predictor.features = torch.from_numpy(split.embedding(row))[None]
            predictor.original_size = tuple(int(v) for v in split.original_sizes[row])
            predictor.input_size = tuple(int(v) for v in split.input_sizes[row])
            predictor.is_image_set = True
            labels = split.labels[row]
            valid = cs.to_index(labels) != IGNORE
            for obj in objects_for_image(labels, split.instances[row].astype(np.int32), cs, min_area=100):
                points, low_res = [(*first_click(obj.mask), 1)], None
                for k in range(MAX_CLICKS):
                    coords = np.array([p[:2] for p in points], float)
                    point_labels = np.array([p[2] for p in points])
                    masks, scores, logits = predictor.predict(coords, point_labels, mask_input=low_res,
                                                              multimask_output=k == 0)
                    best = int(np.argmax(scores))
                    low_res = logits[best][None]
                    iou(masks[best], obj.mask, valid)
                    clicks += 1
                    if k + 1 < MAX_CLICKS:
                        if record is not None and len(record) < 40:
                            record.append((masks[best], obj.mask, valid, list(points)))
                        click = next_click(masks[best], obj.mask, valid, points)
                        if click is None:
                            break
                        points.append(click)
    return clicks, t["s"]


def _ours(cache: str) -> dict:
    return run_clicks(ClicksConfig(cache=cache, split="val", max_clicks=MAX_CLICKS, device="cpu", visualize=0,
                                   num_workers=1, out=str(OUT / "clicks-run"), overwrite=True), progress=False)


@contextmanager
def _threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def profiled(module, names: list[str], spent: dict):
    """Wrap ``module.name`` for each name so that its wall time adds up in ``spent[name]``."""
    originals = {name: getattr(module, name) for name in names}

    def wrap(name, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0
        return timed

    for name, fn in originals.items():
        setattr(module, name, wrap(name, fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def shares(spent: dict, total: float, labels: dict) -> str:
    """'decoder 61%, ...' from seconds per wrapped function; what no wrapper covers is 'rest'."""
    parts = [(labels[name], s) for name, s in spent.items()]
    parts.append(("rest (bookkeeping, run folder)", max(total - sum(s for _, s in parts), 0.0)))
    return ", ".join(f"{name} {100 * s / total:.0f}%" for name, s in parts)


def clicks_time_shares(cache: str) -> str:
    """One in-process run (no loader workers, so object finding and reading are timed, not waited for)."""
    import samcache.evaluation.datasets as datasets
    import samcache.pipeline.clicks as clicks
    from samcache.evaluation.decoding import Decoder

    spent: dict = {}
    labels = {"decode": "decoder", "place_next_clicks": "placement", "upscale": "upsampling",
              "masked_counts": "IoU", "__getitem__": "read + objects + click 1"}
    cfg = ClicksConfig(cache=cache, split="val", max_clicks=MAX_CLICKS, device="cpu", visualize=0, num_workers=0,
                       out=str(OUT / "clicks-run"), overwrite=True)
    with profiled(Decoder, ["decode", "upscale"], spent), \
            profiled(clicks, ["place_next_clicks", "masked_counts"], spent), \
            profiled(datasets.ObjectDataset, ["__getitem__"], spent):
        record = run_clicks(cfg, progress=False)
    return shares(spent, record["seconds"], labels)


def placement_alone(rounds: list, device: str = "cpu") -> tuple[float, float, bool]:
    """Seconds per click: scipy on the host one object at a time, and the batched device implementation on
    ``device`` (predictions already there, as in a run; bench_gpu can call this with "cuda")."""
    with timer() as t_host:
        host = [next_click(p, g, v, c) for p, g, v, c in rounds]
    preds, gts, valids = (torch.from_numpy(np.stack([r[i] for r in rounds])).to(device) for i in range(3))
    place_clicks(preds[:1], gts[:1], valids[:1], [rounds[0][3]])  # warm-up (kernels, allocator)
    if device != "cpu":
        torch.cuda.synchronize()
    with timer() as t_dev:
        on_device = place_clicks(preds, gts, valids, [r[3] for r in rounds])
    return t_host["s"] / len(rounds), t_dev["s"] / len(rounds), host == on_device


def run() -> list[dict]:
    cache = _cache()
    rows = []
    rounds: list = []
    for n in (1, 2):
        with _threads(n):
            up_clicks, up_s = upstream_loop(cache, rounds if n == 1 else None)
            record = _ours(cache)
        ours, theirs = record["clicks"] / record["seconds"], up_clicks / up_s
        rows += [
            {"benchmark": "clicks", "metric": f"{n} thread: upstream predict loop ({up_clicks} clicks, "
                                              f"{IMAGES} images 2048x1024)", "value": f"{theirs:.2f} clicks/s"},
            {"benchmark": "clicks", "metric": f"{n} thread: samcache clicks ({record['clicks']} clicks, whole run)",
             "value": f"{ours:.2f} clicks/s"},
            {"benchmark": "clicks", "metric": f"{n} thread: speed-up samcache / upstream loop (goal >= 1.2 on CPU)",
             "value": f"{ours / theirs:.2f}x"},
        ]
    with _threads(1):
        rows.append({"benchmark": "clicks", "metric": "1 thread: where samcache clicks' time goes",
                     "value": clicks_time_shares(cache)})
        host, device, same = placement_alone(rounds)
    rows += [
        {"benchmark": "clicks", "metric": f"placement alone, scipy on the host ({len(rounds)} recorded rounds)",
         "value": f"{1000 * host:.1f} ms/click"},
        {"benchmark": "clicks", "metric": "placement alone, device implementation on CPU tensors (GPU: UNMEASURED)",
         "value": f"{1000 * device:.1f} ms/click ({'same clicks' if same else 'CLICKS DIFFER'})"},
    ]
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
