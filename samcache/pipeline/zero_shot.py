"""Stage 2a (Phase 1): zero-shot prompted decoding straight from the cache.

Only the prompt encoder and mask decoder are loaded (~4M parameters); the image encoder is
never built. DataLoader workers read the cache and sample prompts; on the device, prompts of
several images share decoder calls (within a budget measured from free memory), masks are
chosen, upsampled and scored without per-prompt host copies, and each image's masks are also
composed into one label map (highest SAM score wins, uncovered pixels are unlabeled) that is
scored like the head's predictions, false positives included.
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

from samcache.evaluation.datasets import PromptDataset, PromptItem
from samcache.data.labels import IGNORE, ClassSet
from samcache.errors import SamcacheError
from samcache.evaluation.metrics import (IoUAccumulator, class_ious, compose_by_score, confusion_matrix_torch,
                                         masked_counts)
from samcache.evaluation.predictions import save_prediction
from samcache.evaluation.visualize import save_overlay, source_image
from samcache.evaluation.decoding import Decoder, Decoding, Placed, device_features, open_decoding
from samcache.features.decoder import pick_by_score
from samcache.evaluation.device_prompts import DEVICE_STRATEGIES, device_image_prompts
from samcache.evaluation.prompts import image_prompts
from samcache.messages import RANDOM_WEIGHTS_NOTE, random_weights_suffix
from samcache.pipeline.config import new_run_dir
from samcache.pipeline.configs import ZeroShotConfig
from samcache.pipeline.provenance import COLUMNS as PROVENANCE_COLUMNS
from samcache.pipeline.provenance import decoding_provenance, nothing_to_score, with_columns
from samcache.pipeline.stage import decoding_record, run_stage
from samcache.pipeline.runs import DETAIL_COLUMNS, format_table, write_csv
from samcache.procs import check_interrupt, worker_init_fn

SUMMARY_COLUMNS = ["class", "iou_semantic", "iou_mean_over_images", "iou_dataset"]


def decode_batch(dec: Decoder, features: dict[str, torch.Tensor], entries: list[tuple[int, int, object]],
                 sizes: list[tuple], multimask: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Low-res logits (P,C,r,r) and scores (P,C) for every entry (image, class, prompt), in entry order."""
    return dec.decode_in_order(features, [Placed(i, sizes[i], p.points if len(p.points) else None, p.point_labels,
                                                 p.box, None, multimask) for i, _, p in entries])


def choose_masks(dec: Decoder, logits: torch.Tensor, scores: torch.Tensor, mode: str, targets: torch.Tensor,
                 valid: torch.Tensor, input_size, original_size) -> tuple[torch.Tensor, torch.Tensor]:
    """One mask per prompt of one image, at the original resolution: (masks (P,H,W) bool, scores (P,)).

    best-score / single pick before upsampling (one mask per prompt); the oracle upsamples all
    candidates and keeps the one with the best IoU against the prompt's class (``targets`` (P,H,W)).
    """
    if mode != "oracle":
        chosen, chosen_scores, _ = pick_by_score(logits, scores)
        return dec.upscale(chosen, input_size, original_size)[:, 0], chosen_scores
    candidates = dec.upscale(logits, input_size, original_size)  # (P, C, H, W)
    p, c = candidates.shape[:2]
    inter, union = masked_counts(candidates.flatten(0, 1), targets, valid, np.repeat(np.arange(p), c))
    best = (inter.double() / union.clamp(min=1)).view(p, c).argmax(dim=1).to(candidates.device)
    rows = torch.arange(p, device=best.device)
    return candidates[rows, best], scores[rows, best]


def run_zero_shot(cfg: ZeroShotConfig, progress: bool = True) -> dict:
    """Decode every image of the split; write the run folder; return its record."""
    if cfg.prompt == "text":  # concept prompts: another kind of decoding (no prompt sampling, no masks to pick)
        from samcache.pipeline.zero_shot_text import run_text_zero_shot

        return run_text_zero_shot(cfg, progress)
    d = open_decoding(cfg)
    cfg, class_set = d.cfg, d.class_set
    out = Path(cfg.out) if cfg.out else new_run_dir(f"zero-shot-{cfg.prompt}-{cfg.multimask}")
    prov = decoding_provenance(d, cfg.multimask == "oracle")
    with run_stage("zero-shot", cfg, out, [cfg.cache], device=d.device, prov=prov) as run:
        result = decode_rows(d, out, progress)
        if not result["prompts"]:  # an empty table would read as a result
            raise nothing_to_score(d) or SamcacheError(f"no prompt in the {len(d.rows)} image(s) of split {cfg.split}")
        seconds = run.seconds()
        semantic, semantic_miou = class_ious(result["confusion"], class_set)
        summary = result["prompted"].summary([class_set.class_names[c] for c in class_set.eval_indices])
        for row in summary:
            row["iou_semantic"] = semantic.get(row["class"], semantic_miou if row["class"] == "mean" else np.nan)
        write_csv(out / "detailed_results.csv", result["details"], DETAIL_COLUMNS)
        write_csv(out / "summary.csv", with_columns(summary, prov), SUMMARY_COLUMNS + PROVENANCE_COLUMNS)
        n_prompts = result["prompts"]
        return run.finish(decoding_record(
            d, "zero-shot", seconds, prompts=n_prompts, prompts_per_s=n_prompts / seconds if seconds else 0.0,
            strategy=cfg.prompt, multimask=cfg.multimask, oracle=cfg.multimask == "oracle",
            miou_semantic=semantic_miou, summary=summary, provenance=prov))


def sample_on_device(cfg: ZeroShotConfig, device: torch.device) -> bool:
    """Prompts drawn on the GPU from the labels there (the same points as the workers would draw)."""
    return device.type == "cuda" and cfg.prompt in DEVICE_STRATEGIES


def _no_prompts(class_map, instances, rng) -> list:
    return []


def _loader(cfg: ZeroShotConfig, class_set: ClassSet, rows: list[int], per_batch: int, device) -> DataLoader:
    sample = (_no_prompts if sample_on_device(cfg, device) else
              functools.partial(image_prompts, cfg.prompt, class_set, points=cfg.points, negatives=cfg.negatives))
    dataset = PromptDataset(cfg.cache, cfg.split, class_set, sample, cfg.seed, rows)
    return DataLoader(dataset, batch_size=per_batch, num_workers=cfg.num_workers, collate_fn=list,
                      worker_init_fn=worker_init_fn() if cfg.num_workers else None,
                      prefetch_factor=4 if cfg.num_workers else None)


def decode_rows(d: Decoding, out: Path, progress: bool) -> dict:
    """Every image's prompts decoded, masks chosen and scored on the device; one host copy per batch."""
    cfg, class_set, split, rows, dec, device = d.cfg, d.class_set, d.split, d.rows, d.decoder, d.device
    per_batch = cfg.images_per_batch or (8 if device.type == "cuda" else 1)
    n, none = class_set.num_classes, class_set.num_classes  # the extra prediction column: unlabeled
    confusion = torch.zeros((n, n + 1), dtype=torch.int64, device=device)
    outputs, n_prompts = ImageOutputs(d, out), 0
    bar = tqdm(total=len(rows), unit="img", desc=f"zero-shot {cfg.prompt}/{cfg.multimask}", disable=not progress)
    on_device = sample_on_device(cfg, device)
    for items in _loader(cfg, class_set, rows, per_batch, device):
        check_interrupt()
        class_maps = [torch.from_numpy(it.class_map).to(device) for it in items]
        if on_device:  # seeded as PromptDataset seeds the workers' generators
            for it, class_map in zip(items, class_maps):
                it.prompts = device_image_prompts(cfg.prompt, class_set, class_map,
                                                  np.random.default_rng([cfg.seed, it.row]))
        features = device_features([it.features for it in items], device)
        entries = [(i, c, p) for i, it in enumerate(items) for c, p in it.prompts]
        sizes = [tuple(split.original_sizes[it.row]) for it in items]
        n_prompts += len(entries)
        logits, scores = (decode_batch(dec, features, entries, sizes, cfg.multimask != "single")
                          if entries else (None, None))
        counts, rows_out = [], []
        for i, it in enumerate(items):
            mine = [k for k, e in enumerate(entries) if e[0] == i]
            class_map = class_maps[i]
            if not mine:
                confusion += confusion_matrix_torch(torch.full_like(class_map, none), class_map, n, n + 1)
                continue
            classes = torch.tensor([entries[k][1] for k in mine], device=device)
            valid = class_map != IGNORE
            idx = torch.tensor(mine, device=device)
            targets = class_map[None] == classes.view(-1, 1, 1) if cfg.multimask == "oracle" else None
            masks, chosen = choose_masks(dec, logits[idx], scores[idx], cfg.multimask, targets, valid,
                                         split.input_sizes[it.row], sizes[i])
            label_map = compose_by_score(masks, chosen, classes, none)
            confusion += confusion_matrix_torch(label_map, class_map, n, n + 1)
            for c in sorted({entries[k][1] for k in mine}):
                union_mask = masks[classes == c].any(dim=0, keepdim=True)
                inter, union = masked_counts(union_mask, (class_map == c)[None], valid)
                counts.append(torch.stack([inter[0].double(), union[0].double(), chosen[classes == c].double().mean()]))
                rows_out.append((it, c, [entries[k][2] for k in mine if entries[k][1] == c]))
            outputs.save(it, label_map, [entries[k][2] for k in mine])
        for (it, c, prompts), (inter, union, score) in zip(rows_out, torch.stack(counts).tolist() if counts else []):
            outputs.detail(it, c, prompts, int(inter), int(union), score)
        bar.update(len(items))
    bar.close()
    return {"prompted": outputs.prompted, "details": outputs.details, "prompts": n_prompts,
            "confusion": confusion.cpu().numpy()}


@dataclass
class ImageOutputs:
    """What a zero-shot run writes of each image: its detailed_results.csv rows (``details``, IoUs accumulated in
    ``prompted``), and its saved prediction and overlay (the only per-image host copies)."""

    d: Decoding
    out: Path
    prompted: IoUAccumulator = field(default_factory=IoUAccumulator)
    details: list[dict] = field(default_factory=list)
    shown: int = 0  # overlays saved so far

    def detail(self, it: PromptItem, c: int, prompts, inter: int, union: int, score: float) -> None:
        cfg, class_set = self.d.cfg, self.d.class_set
        boxes = [p.box.astype(int).tolist() for p in prompts if p.box is not None]
        iou = self.prompted.add(class_set.class_names[c], inter, union)
        self.details.append({
            "image_id": self.d.split.image_ids[it.row], "class": class_set.class_names[c], "strategy": cfg.prompt,
            "multimask": cfg.multimask,
            "points": json.dumps(np.concatenate([p.points for p in prompts]).astype(int).tolist()),
            "point_labels": json.dumps(np.concatenate([p.point_labels for p in prompts]).astype(int).tolist()),
            "box": json.dumps(boxes[0]) if len(boxes) == 1 else "", "score": score, "iou": iou,
            "intersection": inter, "union": union})

    def save(self, it: PromptItem, label_map: torch.Tensor, prompts) -> None:
        """Saved predictions and overlays."""
        cfg, class_set, split = self.d.cfg, self.d.class_set, self.d.split
        image_id = split.image_ids[it.row]
        if not (cfg.save_predictions or self.shown < cfg.visualize):
            return
        pred = label_map.cpu().numpy()
        pred_map = np.where(pred == class_set.num_classes, IGNORE, pred).astype(np.uint8)
        if cfg.save_predictions:
            save_prediction(self.out / "predictions", image_id, class_set.to_label_ids(pred_map), class_set.source)
        if self.shown < cfg.visualize:
            label = cfg.multimask + (" (ORACLE: best of 3 against ground truth)" if cfg.multimask == "oracle" else "")
            save_overlay(self.out / "visualizations" / f"{image_id}.png",
                         source_image(split, image_id), it.class_map, pred_map,
                         class_set, f"{image_id}  prompt={cfg.prompt}  multimask={label}"
                         + random_weights_suffix(self.d.weights.random),
                         [(p.points, p.point_labels) for p in prompts], [p.box for p in prompts if p.box is not None])
            self.shown += 1


def summary_table(record: dict) -> str:
    if record["strategy"] == "text":
        from samcache.pipeline.zero_shot_text import LABEL, SUMMARY_COLUMNS as TEXT_COLUMNS

        text = (f"{LABEL} (compose: {record['compose']}; iou_semantic: the composed label map, false positives "
                f"counted)\n" + format_table(record["summary"], TEXT_COLUMNS))
        if record.get("instances_listed") is not None:
            text += (f"\n{record['instances_listed']} instances listed for AP in instances/ (presence x score >= "
                     f"{record['instance_threshold']})")
        return text + ("\n" + RANDOM_WEIGHTS_NOTE if record["random_weights"] else "")
    title = f"zero-shot {record['strategy']} / {record['multimask']}" + (" (ORACLE)" if record["oracle"] else "")
    text = (title + "  (iou_semantic: the composed label map, false positives counted; iou_dataset and "
            "iou_mean_over_images: prompted-class IoU, only images containing the class)\n"
            + format_table(record["summary"], SUMMARY_COLUMNS))
    if record["random_weights"]:
        text += "\n" + RANDOM_WEIGHTS_NOTE
    return text
