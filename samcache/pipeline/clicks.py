"""Phase 1 as the SAM paper measures it: per-object interactive clicks from the cache (mIoU@k, NoC).

Per object (thing instances; stuff and group regions as components or whole class regions):
click 1 at the point farthest from the boundary (or uniform), SAM's masks picked by its score
(or ORACLE: against the ground truth); each next click where RITM's clicker puts it (or in the
largest error region of the last prediction), with all clicks so far and the previous low-res
logits as ``mask_input``, one mask. All objects of a batch of images advance one click per decoder
call (within the memory budget); masks are upsampled (only the chosen one) and scored on the
device. Objects come from DataLoader workers; the next click is placed with scipy on the host when
the masks live in host memory, and by ``evaluation.placement`` on the device otherwise (the same
clicks, tested bit for bit), so only click coordinates come back from a GPU.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from samcache.evaluation.datasets import ObjectDataset, ObjectItem
from samcache.errors import SamcacheError
from samcache.evaluation.click_metrics import miou_curve, noc, summarize
from samcache.data.labels import IGNORE
from samcache.evaluation.metrics import masked_counts
from samcache.evaluation.predictions import save_prediction
from samcache.evaluation.visualize import save_click_overlay, save_curve, source_image
from samcache.evaluation.clicks import ClickObject, first_click, next_click, objects_for_image
from samcache.evaluation.placement import place_clicks
from samcache.evaluation.decoding import Decoder, Decoding, device_features, open_decoding
from samcache.features.decoder import pick_by_score
from samcache.messages import ORACLE_FIRST_MASK, RANDOM_WEIGHTS_NOTE, random_weights_suffix
from samcache.pipeline.config import new_run_dir
from samcache.pipeline.configs import ClicksConfig
from samcache.pipeline.provenance import COLUMNS as PROVENANCE_COLUMNS
from samcache.pipeline.provenance import decoding_provenance, nothing_to_score, with_columns
from samcache.pipeline.stage import decoding_record, run_stage
from samcache.pipeline.runs import format_table, write_csv
from samcache.procs import check_interrupt, worker_init_fn

OBJECT_COLUMNS = ["image_id", "object_id", "class", "area", "clicks", "ious", "noc85", "noc90"]


@dataclass
class Track:
    """One object's clicks so far, its IoU curve and the logits fed back as the next mask_input."""

    image: int  # index in the batch
    obj: ClickObject
    clicks: list[tuple[int, int, int]]
    ious: list[float] = field(default_factory=list)
    low_res: torch.Tensor | None = None  # (1, 256, 256) chosen logits of the last click
    done: bool = False  # no error left: later clicks would change nothing


@dataclass
class Batch:
    """A batch of images' objects, held once (no per-round copies).

    features: the stacked feature maps on the device; sizes / input_sizes: per image (H, W);
    valid: (M,H,W) bool, scored pixels per image; targets: (N,H,W) bool, every object's mask
    (in host memory on the CPU: numpy views, no copy), both on the decoding device.
    """

    features: dict
    sizes: list
    input_sizes: list
    valid: torch.Tensor
    targets: torch.Tensor


def click_round(dec: Decoder, cfg: ClicksConfig, batch: Batch, tracks: list[Track], position: list[int]
                ) -> torch.Tensor:
    """Decode every active object's clicks so far; returns its chosen masks (A,H,W) bool on the device and
    records IoU and low-res logits. ``position``: the tracks' rows of ``batch.targets``."""
    device = batch.valid.device
    first = len(tracks[0].clicks) == 1
    coords = np.stack([dec.to_frame(np.array([c[:2] for c in t.clicks], np.float64), batch.sizes[t.image])
                       for t in tracks])
    labels = np.array([[c[2] for c in t.clicks] for t in tracks])
    mask_input = None if first or not cfg.mask_input else torch.stack([t.low_res for t in tracks])
    logits, scores = dec.decode(batch.features, torch.tensor([t.image for t in tracks], device=device),
                                torch.as_tensor(coords, dtype=torch.float, device=device),
                                torch.as_tensor(labels, dtype=torch.int, device=device), None, first, mask_input)
    images = [t.image for t in tracks]
    if first and cfg.first_mask == "oracle":  # upsample every mask, keep the best against the object's mask
        candidates = _upscale(dec, logits, tracks, batch)
        n_masks = candidates.shape[1]  # as many as the decoder gave (the family decides)
        inter, union = masked_counts(candidates.flatten(0, 1), batch.targets, batch.valid,
                                     np.repeat(position, n_masks), np.repeat(images, n_masks))
        choice = (inter.double() / union.clamp(min=1)).view(-1, n_masks).argmax(dim=1).to(device)
        rows = torch.arange(len(tracks), device=device)
        chosen, masks = logits[rows, choice][:, None], candidates[rows, choice]
    else:  # SAM's own score (one mask when multimask is off): only the chosen mask is upsampled
        chosen, _, _ = pick_by_score(logits, scores)
        masks = _upscale(dec, chosen, tracks, batch)[:, 0]
    inter, union = masked_counts(masks, batch.targets, batch.valid, position, images)
    ious = torch.where(union > 0, inter.double() / union.clamp(min=1), torch.ones_like(inter, dtype=torch.double))
    for track, value, low_res in zip(tracks, ious.tolist(), chosen):  # one host copy per round
        track.ious.append(value)
        track.low_res = dec.backend.feedback(low_res)
    return masks


def _upscale(dec: Decoder, logits: torch.Tensor, tracks: list[Track], batch: Batch) -> torch.Tensor:
    """(A,C,r,r) -> (A,C,H,W) bool; a split holds one image size, so chunks mix images freely."""
    image = tracks[0].image
    return dec.upscale(logits, batch.input_sizes[image], batch.sizes[image])


def place_next_clicks(masks: torch.Tensor, batch: Batch, tracks: list[Track], position: list[int],
                      rule: str) -> list[tuple[int, int, int] | None]:
    """Each active object's next click from its predicted mask (A,H,W): scipy on host memory, else on the device."""
    if masks.device.type == "cpu":
        targets, valid = batch.targets.numpy(), batch.valid.numpy()
        return [next_click(pred, targets[p], valid[t.image], t.clicks, rule)
                for pred, p, t in zip(masks.numpy(), position, tracks)]
    device = masks.device
    targets = batch.targets[torch.tensor(position, device=device)]
    valid = batch.valid[torch.tensor([t.image for t in tracks], device=device)]
    return place_clicks(masks, targets, valid, [t.clicks for t in tracks], rule)


def run_batch(dec: Decoder, items: list[ObjectItem], split, cfg: ClicksConfig) -> list[Track]:
    """All objects of a batch of images through ``max_clicks`` clicks."""
    device = dec.device
    tracks = [Track(i, obj, [(x, y, 1)]) for i, it in enumerate(items) for obj, (x, y) in zip(it.objects,
                                                                                          it.first_clicks)]
    batch = Batch(device_features([it.features for it in items], device),
                  [tuple(int(v) for v in split.original_sizes[it.row]) for it in items],
                  [tuple(int(v) for v in split.input_sizes[it.row]) for it in items],
                  torch.from_numpy(np.stack([it.valid for it in items])).to(device),
                  torch.from_numpy(np.stack([t.obj.mask for t in tracks])).to(device))  # once per batch
    for k in range(cfg.max_clicks):
        position = [p for p, t in enumerate(tracks) if not t.done]
        if not position:
            break
        active = [tracks[p] for p in position]
        masks = click_round(dec, cfg, batch, active, position)
        if k + 1 == cfg.max_clicks:
            break
        for track, click in zip(active, place_next_clicks(masks, batch, active, position, cfg.next_click)):
            if click is None:
                track.done = True
            else:
                track.clicks.append(click)
    return tracks


def run_clicks(cfg: ClicksConfig, progress: bool = True) -> dict:
    """The interactive protocol over a cache split; writes per_object.csv, summary.csv, curve.png."""
    d = open_decoding(cfg)
    cfg, class_set = d.cfg, d.class_set
    out = Path(cfg.out) if cfg.out else new_run_dir(f"clicks-{cfg.first_mask}")
    prov = decoding_provenance(d, cfg.first_mask == "oracle")
    with run_stage("clicks", cfg, out, [cfg.cache], device=d.device, prov=prov) as run:
        objects, n_clicks = click_objects(d, out, progress)
        if not objects:  # nothing to score: an empty curve would read as a result
            raise nothing_to_score(d) or SamcacheError(
                f"no object of at least --min-area {cfg.min_area} pixels in the {len(d.rows)} image(s) of split "
                f"{cfg.split} for class set {cfg.classes}; lower --min-area (or --stuff class, which joins a "
                f"class's pieces)")
        seconds = run.seconds()
        names = [class_set.class_names[c] for c in class_set.eval_indices]
        summary = summarize(objects, names, cfg.max_clicks)
        write_csv(out / "per_object.csv", objects, OBJECT_COLUMNS)
        write_csv(out / "summary.csv", with_columns(summary, prov), list(summary[0]) + PROVENANCE_COLUMNS)
        oracle = cfg.first_mask == "oracle"
        save_curve(out / "curve.png", miou_curve(objects, names, cfg.max_clicks),
                   f"mIoU after k clicks, {cfg.split}, first mask {cfg.first_mask}" + (ORACLE_FIRST_MASK if oracle else "")
                   + random_weights_suffix(d.weights.random))
        return run.finish(decoding_record(
            d, "clicks", seconds, objects=len(objects), clicks=n_clicks,
            clicks_per_s=n_clicks / seconds if seconds else 0.0, max_clicks=cfg.max_clicks,
            first_click=cfg.first_click, next_click=cfg.next_click, first_mask=cfg.first_mask, oracle=oracle,
            mask_input=cfg.mask_input, stuff=cfg.stuff, min_area=cfg.min_area, summary=summary, provenance=prov))


def click_objects(d: Decoding, out: Path, progress: bool) -> tuple[list[dict], int]:
    """Every object of the split through the protocol; (per-object rows, clicks decoded)."""
    cfg, class_set, split, rows, dec = d.cfg, d.class_set, d.split, d.rows, d.decoder
    random_weights = d.weights.random
    find = functools.partial(objects_for_image, stuff=cfg.stuff, min_area=cfg.min_area)
    first = functools.partial(first_click, mode=cfg.first_click)
    dataset = ObjectDataset(cfg.cache, cfg.split, class_set, find, first, cfg.seed, rows)
    per_batch = cfg.images_per_batch or (8 if dec.device.type == "cuda" else 1)
    loader = DataLoader(dataset, batch_size=per_batch, num_workers=cfg.num_workers, collate_fn=list,
                        worker_init_fn=worker_init_fn() if cfg.num_workers else None,
                        prefetch_factor=4 if cfg.num_workers else None)
    objects, n_clicks, shown = [], 0, 0
    bar = tqdm(total=len(rows), unit="img", desc=f"clicks (max {cfg.max_clicks})", disable=not progress)
    for batch in loader:
        check_interrupt()
        items = [it for it in batch if it.objects]
        if not items:
            bar.update(len(batch))
            continue
        tracks = run_batch(dec, items, split, cfg)
        if cfg.save_predictions:
            for i, item in enumerate(items):
                pred = last_masks(dec, split, item, [t for t in tracks if t.image == i])
                save_prediction(out / "predictions", split.image_ids[item.row], class_set.to_label_ids(pred),
                                class_set.source)
        for track in tracks:
            item = items[track.image]
            n_clicks += len(track.ious)
            objects.append({"image_id": split.image_ids[item.row], "object_id": track.obj.object_id,
                            "class": class_set.class_names[track.obj.class_index], "area": track.obj.area,
                            "clicks": json.dumps([list(c) for c in track.clicks[: len(track.ious)]]),
                            "ious": json.dumps([round(v, 6) for v in track.ious]),
                            "noc85": noc(track.ious, 0.85, cfg.max_clicks),
                            "noc90": noc(track.ious, 0.90, cfg.max_clicks)})
            if shown < cfg.visualize:
                shown += 1
                sizes = (split.input_sizes[item.row], split.original_sizes[item.row])
                pred = dec.upscale(track.low_res[None], *sizes)[0, 0].cpu().numpy()
                image_id, name = split.image_ids[item.row], class_set.class_names[track.obj.class_index]
                # object ids restart per class for stuff components and group regions: the class makes it unique
                save_click_overlay(out / "visualizations" / f"{image_id}_{name}_{track.obj.object_id}.png",
                                   source_image(split, image_id),
                                   track.obj.mask, pred, track.clicks[: len(track.ious)], track.ious,
                                   f"{image_id} object {track.obj.object_id} ({name})"
                                   + (ORACLE_FIRST_MASK if cfg.first_mask == "oracle" else "")
                                   + random_weights_suffix(random_weights))
        bar.update(len(batch))  # once its objects are done: the bar counts finished images
    bar.close()
    return objects, n_clicks


def last_masks(dec: Decoder, split, item: ObjectItem, tracks: list[Track]) -> np.ndarray:
    """One image's objects after their last click as a label map (class indices, IGNORE where no object is):
    painted from the largest object to the smallest, so that a small object on a large one stays visible."""
    sizes = (split.input_sizes[item.row], split.original_sizes[item.row])
    label = np.full(tuple(int(v) for v in split.original_sizes[item.row]), IGNORE, np.uint8)
    for track in sorted(tracks, key=lambda t: -t.obj.area):
        label[dec.upscale(track.low_res[None], *sizes)[0, 0].cpu().numpy()] = track.obj.class_index
    return label


def summary_table(record: dict) -> str:
    columns = list(record["summary"][0])  # every column of summary.csv
    oracle = ORACLE_FIRST_MASK if record["oracle"] else ""
    text = (f"clicks: {record['objects']} objects, up to {record['max_clicks']} clicks{oracle}\n"
            + format_table(record["summary"], columns))
    return text + ("\n" + RANDOM_WEIGHTS_NOTE if record["random_weights"] else "")
