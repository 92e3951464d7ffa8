"""Stage 2a (Phase 1): zero-shot point-prompted decoding straight from the cache.

Only the prompt encoder and mask decoder are loaded (~4M parameters); the image encoder is
never built. All prompts of an image (of several images on CUDA) share one decoder call,
and masks are upsampled to the original resolution once per image.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from cityscapesscripts.helpers.labels import name2label
from tqdm import tqdm

from samcache.cache.reader import CacheSplit, open_cache
from samcache.data.labels import IGNORE, ClassSet, get_class_set
from samcache.errors import SamcacheError
from samcache.evaluation.metrics import IoUAccumulator, intersection_union
from samcache.evaluation.visualize import save_overlay, source_image
from samcache.features.decoder import MASK_THRESHOLD, decode
from samcache.features.encoder import PASSES, describe_device, resolve_device
from samcache.features.models import build_prompt_decoder
from samcache.features.preprocess import postprocess_logits, to_input_frame
from samcache.features.prompts import Prompt, sample_prompts
from samcache.messages import RANDOM_WEIGHTS_NOTE, random_weights_suffix
from samcache.pipeline.config import new_run_dir, now_iso, save_config
from samcache.pipeline.configs import ZeroShotConfig
from samcache.pipeline.runs import format_table, run_folder, write_csv, write_record

DETAIL_COLUMNS = ["image_id", "class", "strategy", "multimask", "points", "point_labels", "box", "score", "iou",
                  "intersection", "union"]
SUMMARY_COLUMNS = ["class", "iou_mean_over_images", "iou_dataset"]
UPSCALE_CHUNK = 24  # masks upsampled per interpolate call, to bound memory at 2048x1024
CPU_DECODE_CHUNK = 4  # on CPU larger decoder batches fall out of cache and get slower per prompt


@dataclass
class Entry:
    """One prompt of one class in one image of the batch."""

    image: int
    class_index: int
    prompt: Prompt
    logits: torch.Tensor | None = None  # (C, 256, 256)
    scores: torch.Tensor | None = None  # (C,)


def load_decoder(cfg: ZeroShotConfig, split: CacheSplit):
    """Prompt encoder + mask decoder whose weights match the cache's fingerprint."""
    fp = split.fingerprint
    model_type = cfg.model_type or fp.model_type
    if model_type != fp.model_type:
        raise SamcacheError(f"cache {split.cache_path} was built with {fp.model_type}, not --model-type {model_type}")
    if fp.random_weights:
        if cfg.checkpoint:
            raise SamcacheError(f"cache {split.cache_path} holds {fp.weights()} embeddings; "
                                f"checkpoint {cfg.checkpoint} cannot match them")
        return build_prompt_decoder(model_type, None, fp.random_seed, allow_random=True)
    if not cfg.checkpoint:
        raise SamcacheError(f"cache {split.cache_path} was built from checkpoint sha256 "
                            f"{fp.checkpoint_sha256[:12]}; pass --checkpoint")
    pe, md, wid = build_prompt_decoder(model_type, cfg.checkpoint)
    if wid.checkpoint_sha256 != fp.checkpoint_sha256:
        raise SamcacheError(f"checkpoint {cfg.checkpoint} (sha256 {wid.checkpoint_sha256[:12]}) does not match the "
                            f"cache's fingerprint (sha256 {fp.checkpoint_sha256[:12]})")
    return pe, md, wid


def _decode_entries(pe, md, embeddings: torch.Tensor, entries: list[Entry], sizes: list[tuple], multimask: bool):
    """One decoder call per prompt shape (token count); fills entry.logits / entry.scores."""
    groups: dict[tuple, list[Entry]] = {}
    for e in entries:
        groups.setdefault(e.prompt.key(), []).append(e)
    device = embeddings.device
    for (n_points, has_box), group in groups.items():
        coords = labels = boxes = None
        if n_points:
            coords = torch.as_tensor(np.stack([to_input_frame(e.prompt.points, sizes[e.image][0]) for e in group]),
                                     dtype=torch.float, device=device)
            labels = torch.as_tensor(np.stack([e.prompt.point_labels for e in group]), dtype=torch.int, device=device)
        if has_box:
            boxes = torch.as_tensor(np.stack([to_input_frame(e.prompt.box.reshape(2, 2), sizes[e.image][0]).reshape(4)
                                              for e in group]), dtype=torch.float, device=device)
        index = torch.tensor([e.image for e in group], device=device)
        step = CPU_DECODE_CHUNK if device.type == "cpu" else len(group)
        for s in range(0, len(group), step):
            part = slice(s, s + step)
            logits, scores = decode(pe, md, embeddings, index[part], None if coords is None else coords[part],
                                    None if labels is None else labels[part],
                                    None if boxes is None else boxes[part], multimask)
            for e, lg, sc in zip(group[part], logits, scores):
                e.logits, e.scores = lg, sc


def _choose_masks(entries: list[Entry], original_size, input_size, mode: str, gt: np.ndarray, valid: np.ndarray):
    """Upsample an image's masks (once, in chunks) and pick one per prompt; returns (masks, scores)."""
    if mode != "oracle":  # pick by SAM's own score before upsampling: only one mask per prompt
        best = [int(torch.argmax(e.scores)) for e in entries]
        logits = torch.stack([e.logits[b: b + 1] for e, b in zip(entries, best)])
        scores = [float(e.scores[b]) for e, b in zip(entries, best)]
    else:
        logits = torch.stack([e.logits for e in entries])
    masks = torch.cat([postprocess_logits(logits[i: i + UPSCALE_CHUNK], input_size, original_size) > MASK_THRESHOLD
                       for i in range(0, len(logits), UPSCALE_CHUNK)]).cpu().numpy()
    if mode != "oracle":
        return masks[:, 0], scores
    chosen, scores = [], []
    for e, candidates in zip(entries, masks):  # best of 3 against ground truth (SAM paper's oracle)
        gt_c = gt == e.class_index
        ious = [intersection_union(m, gt_c, valid) for m in candidates]
        b = int(np.argmax([i / u if u else 0.0 for i, u in ious]))
        chosen.append(candidates[b])
        scores.append(float(e.scores[b]))
    return np.stack(chosen), scores


def _prompts_for_image(cfg, class_set: ClassSet, gt: np.ndarray, instances: np.ndarray, rng) -> list[tuple[int, Prompt]]:
    valid = gt != IGNORE
    out = []
    for c in class_set.eval_indices:
        mask = gt == c
        if not mask.any():
            continue  # classes absent from an image are not counted for it
        is_thing = name2label[class_set.class_names[c]].hasInstances
        for p in sample_prompts(cfg.prompt, mask, valid, instances, is_thing, rng, cfg.points, cfg.negatives):
            out.append((c, p))
    return out


def run_zero_shot(cfg: ZeroShotConfig, progress: bool = True) -> dict:
    """Decode every image of the split; write the run folder; return its record."""
    class_set = get_class_set(cfg.classes)
    split = open_cache(cfg.cache).split(cfg.split)
    rows = split.require_complete()[: cfg.limit]
    pe, md, weights = load_decoder(cfg, split)
    device = resolve_device(cfg.device)
    pe, md = pe.to(device), md.to(device)
    per_batch = cfg.images_per_batch or (8 if device.type == "cuda" else 1)
    started, t0, passes = now_iso(), time.perf_counter(), PASSES["images"]
    out = Path(cfg.out) if cfg.out else new_run_dir(f"zero-shot-{cfg.prompt}-{cfg.multimask}")
    with run_folder(out, "zero-shot", cfg.overwrite, started) as folder:
        save_config(cfg, out / "config.yaml")
        acc, details, n_prompts = _decode_split(cfg, class_set, split, rows, pe, md, device, per_batch, weights.random,
                                                out, progress)
        seconds = time.perf_counter() - t0
        summary = acc.summary([class_set.class_names[c] for c in class_set.eval_indices])
        write_csv(out / "detailed_results.csv", details, DETAIL_COLUMNS)
        write_csv(out / "summary.csv", summary, SUMMARY_COLUMNS)
        record = {"stage": "zero-shot", "status": "complete", "started": started, "seconds": round(seconds, 3),
                  "images": len(rows), "prompts": n_prompts, "prompts_per_s": n_prompts / seconds if seconds else 0.0,
                  "strategy": cfg.prompt, "multimask": cfg.multimask, "oracle": cfg.multimask == "oracle",
                  "classes": cfg.classes, "cache": str(cfg.cache), "split": cfg.split,
                  "device": describe_device(device), "weights": weights.describe(),
                  "fingerprint": split.fingerprint.describe(), "random_weights": weights.random,
                  "encoder_passes": PASSES["images"] - passes, "summary": summary, "config": cfg.dump(),
                  "out": str(out)}
        write_record(out, record)
        folder.commit()
    return record


def _decode_split(cfg, class_set, split, rows, pe, md, device, per_batch, random_weights, out, progress):
    """Prompts for every (image, present class), decoded in batches; returns (accumulator, detail rows, prompts)."""
    label = cfg.multimask + (" (ORACLE: best of 3 against ground truth)" if cfg.multimask == "oracle" else "")
    acc, details, n_prompts, shown = IoUAccumulator(), [], 0, 0
    bar = tqdm(total=len(rows), unit="img", desc=f"zero-shot {cfg.prompt}/{cfg.multimask}", disable=not progress)
    for start in range(0, len(rows), per_batch):
        batch = rows[start: start + per_batch]
        emb = torch.from_numpy(np.stack([split.embedding(r) for r in batch]).astype(np.float32)).to(device)
        gts = [class_set.to_index(split.labels[r]) for r in batch]
        instances = [split.instances[r].astype(np.int32) for r in batch]
        sizes = [(tuple(split.original_sizes[r]), tuple(split.input_sizes[r])) for r in batch]
        entries = [Entry(i, c, p) for i, r in enumerate(batch)
                   for c, p in _prompts_for_image(cfg, class_set, gts[i], instances[i], np.random.default_rng([cfg.seed, r]))]
        n_prompts += len(entries)
        if entries:
            _decode_entries(pe, md, emb, entries, sizes, cfg.multimask != "single")
        for i, r in enumerate(batch):
            mine = [e for e in entries if e.image == i]
            if not mine:
                continue
            valid = gts[i] != IGNORE
            masks, scores = _choose_masks(mine, sizes[i][0], sizes[i][1], cfg.multimask, gts[i], valid)
            pred_map = np.full(gts[i].shape, IGNORE, np.uint8)
            for c in sorted({e.class_index for e in mine}):
                sel = [k for k, e in enumerate(mine) if e.class_index == c]
                union = np.any(masks[sel], axis=0)
                pred_map[union] = c
                inter, uni = intersection_union(union, gts[i] == c, valid)
                iou = acc.add(class_set.class_names[c], inter, uni)
                prompts = [mine[k].prompt for k in sel]
                boxes = [p.box.astype(int).tolist() for p in prompts if p.box is not None]
                details.append({
                    "image_id": split.image_ids[r], "class": class_set.class_names[c], "strategy": cfg.prompt,
                    "multimask": cfg.multimask,
                    "points": json.dumps(np.concatenate([p.points for p in prompts]).astype(int).tolist()),
                    "point_labels": json.dumps(np.concatenate([p.point_labels for p in prompts]).astype(int).tolist()),
                    "box": json.dumps(boxes[0]) if len(boxes) == 1 else "",
                    "score": float(np.mean([scores[k] for k in sel])), "iou": iou, "intersection": inter,
                    "union": uni})
            if shown < cfg.visualize:
                shown += 1
                image_id = split.image_ids[r]
                save_overlay(out / "visualizations" / f"{image_id}.png",
                             source_image(split.attrs.get("data_root"), cfg.split, image_id), gts[i], pred_map,
                             class_set, f"{image_id}  prompt={cfg.prompt}  multimask={label}"
                             + random_weights_suffix(random_weights),
                             [(e.prompt.points, e.prompt.point_labels) for e in mine],
                             [e.prompt.box for e in mine if e.prompt.box is not None])
        bar.update(len(batch))
    bar.close()
    return acc, details, n_prompts


def summary_table(record: dict) -> str:
    title = f"zero-shot {record['strategy']} / {record['multimask']}" + (" (ORACLE)" if record["oracle"] else "")
    text = title + "\n" + format_table(record["summary"], SUMMARY_COLUMNS)
    if record["random_weights"]:
        text += "\n" + RANDOM_WEIGHTS_NOTE
    return text
