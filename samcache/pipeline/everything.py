"""`samcache everything`: SAM's automatic mask generator over a cache split, and SSA-style refinement of a head.

Every image's masks are written as upstream's ``scripts/amg.py --convert-to-rle`` writes them (``masks/<image
id>.json``: a list of records with a COCO RLE ``segmentation``). With ``refine_with`` (a head run or checkpoint of
the same weights) each image's head prediction is computed from the cache too and refined by the masks
(``evaluation.refine``): the refined label maps are saved as official-style PNGs and scored, the head's own
beside them, so the report shows "head + SAM masks" next to the head. No image encoder runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from samcache import fileio
from samcache.cache.reader import CacheSplit, open_cache
from samcache.cache.schema import Fingerprint
from samcache.data.labels import ClassSet, get_class_set
from samcache.errors import SamcacheError
from samcache.evaluation.datasets import CacheHeadDataset
from samcache.evaluation.decoding import Decoder
from samcache.evaluation.everything import GeneratorSettings, ImageFrame, generate, masks_of
from samcache.evaluation.heads import check_fingerprint, load_head
from samcache.evaluation.metrics import IMAGE_COLUMNS, class_ious, confusion_matrix_torch, image_rows
from samcache.evaluation.predictions import save_prediction
from samcache.evaluation.refine import refine_by_masks
from samcache.evaluation.training_data import iterate
from samcache.evaluation.visualize import source_image
from samcache.evaluation.visualize_masks import save_masks_picture, save_refined_picture
from samcache.features.device import describe_device
from samcache.features.frames import to_original
from samcache.messages import RANDOM_WEIGHTS_NOTE, count, random_weights_suffix
from samcache.pipeline.config import new_run_dir
from samcache.pipeline.configs import EverythingConfig
from samcache.pipeline.evaluate import train_dataset, trained_on
from samcache.pipeline.head_checkpoints import HeadChoice, choose_checkpoint
from samcache.pipeline.provenance import COLUMNS as PROVENANCE_COLUMNS
from samcache.pipeline.provenance import provenance, warn_train_is_val, with_columns
from samcache.pipeline.runs import PER_IMAGE, RunRecord, format_table, write_csv
from samcache.pipeline.stage import run_stage

MASK_COLUMNS = ["image_id", "masks", "covered", "mean_predicted_iou", "mean_stability_score"]  # masks.csv
SUMMARY_COLUMNS = ["class", "iou", "iou_head", "masks_per_image", "covered"]
HEAD_LABEL = "head + SAM masks"


@dataclass
class Refining:
    """The head a run refines: the model, its checkpoint's facts, the classes scored, and its confusion so far."""

    choice: HeadChoice
    model: torch.nn.Module
    ckpt: dict
    class_set: ClassSet
    features: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{HEAD_LABEL} (epoch {self.ckpt['epoch']})"


def open_head(cfg: EverythingConfig, split: CacheSplit, device: torch.device) -> Refining | None:
    if cfg.refine_with is None:
        if cfg.epoch is not None:
            raise SamcacheError("--epoch applies with --refine-with only")
        return None
    choice = choose_checkpoint(cfg.refine_with, cfg.epoch, option="refine_with")
    model, ckpt = load_head(choice.path, device)
    check_fingerprint(ckpt["fingerprint"], split, choice.path)
    class_set = get_class_set(ckpt["class_set"], split.dataset).shared_with(train_dataset(ckpt))
    features = tuple(ckpt.get("features") or [split.family.main_feature])
    return Refining(choice, model.eval(), ckpt, class_set, features)


def run_everything(cfg: EverythingConfig, progress: bool = True) -> dict:
    """Masks of every image of the split (and, with ``refine_with``, the refined head); the run folder's record."""
    split = open_cache(cfg.cache).split(cfg.split)
    rows = split.require_complete()[: cfg.limit]
    decoder = Decoder(cfg.cache, cfg.checkpoint, cfg.device, split=cfg.split, model_type=cfg.model_type)
    settings = GeneratorSettings.for_family(decoder.family, **cfg.generator_options())
    head = open_head(cfg, split, decoder.device)
    cfg = cfg.model_copy(update={"model_type": split.fingerprint.model_type,  # what config.yaml records
                                 **{k: v for k, v in settings.as_dict().items() if k != "points_per_batch"}})
    out = Path(cfg.out) if cfg.out else new_run_dir("everything" + ("-refined" if head else ""))
    random = decoder.weights.random or (head is not None and
                                        Fingerprint.from_attrs(head.ckpt["fingerprint"]).random_weights)
    prov = provenance(split, len(rows), random)
    reads = [cfg.cache] + ([head.choice.path] if head else [])
    with run_stage("everything", cfg, out, reads, device=decoder.device, prov=prov) as run:
        if head:
            prov.update(trained_on(head.ckpt, cfg.cache, cfg.split))
            if prov["train_is_val"]:
                warn_train_is_val(cfg.split, "everything")
        result = _segment(cfg, split, rows, decoder, settings, head, out, random, progress)
        per_image, summary = result["per_image"], result["summary"]
        write_csv(out / "masks.csv", per_image, MASK_COLUMNS)
        columns = SUMMARY_COLUMNS if head else [c for c in SUMMARY_COLUMNS if c not in ("iou", "iou_head")]
        write_csv(out / "summary.csv", with_columns(summary, prov), columns + PROVENANCE_COLUMNS)
        if head:
            write_csv(out / PER_IMAGE, result["image_ious"], IMAGE_COLUMNS)
        n_masks = sum(r["masks"] for r in per_image)
        return run.finish(RunRecord.from_json({
            "stage": "everything", "status": "complete", "started": None, "seconds": None, "images": len(rows),
            "classes": head.ckpt["class_set"] if head else None, "cache": str(cfg.cache), "split": cfg.split,
            "device": describe_device(decoder.device), "prompt_budget": decoder.budget,
            "weights": decoder.weights.describe(), "fingerprint": split.fingerprint.describe(),
            "random_weights": random, "encoder_passes": None, "config": None, "out": None,
            "generator": settings.as_dict(), "masks": n_masks, "masks_per_image": n_masks / max(1, len(rows)),
            "refined": head is not None, "head": str(head.choice.path) if head else None,
            "head_choice": head.choice.note if head else None, "epoch": head.ckpt["epoch"] if head else None,
            "miou": result.get("miou"), "miou_head": result.get("miou_head"), "summary": summary,
            "provenance": prov}))


@torch.inference_mode()
def _segment(cfg: EverythingConfig, split: CacheSplit, rows: list[int], decoder: Decoder,
             settings: GeneratorSettings, head: Refining | None, out: Path, random: bool, progress: bool) -> dict:
    """The loop: read a batch of images, generate their masks, refine and score the head, write each image."""
    device = decoder.device
    names = tuple(split.family.features)
    class_set = head.class_set if head else get_class_set("seed5", split.dataset)
    dataset = CacheHeadDataset(str(cfg.cache), cfg.split, class_set, rows, mode="eval", features=names)
    per_batch = cfg.images_per_batch or (8 if device.type == "cuda" else 1)
    n = class_set.num_classes
    confusion = {"refined": torch.zeros((n, n), dtype=torch.int64, device=device),
                 "head": torch.zeros((n, n), dtype=torch.int64, device=device)}
    per_image, image_ious, shown = [], [], 0
    suffix = random_weights_suffix(random)
    (out / "masks").mkdir(exist_ok=True)
    bar = tqdm(total=len(rows), unit="img", desc="everything", disable=not progress)
    for batch_rows, features, targets in iterate(dataset, None, list(range(len(rows))), per_batch, cfg.num_workers,
                                                 device):
        maps = {name: f.float() for name, f in zip(names, features)}
        frames = [ImageFrame(k, split.original_size(row), split.input_size(row)) for k, row in enumerate(batch_rows)]
        records = generate(decoder, maps, frames, settings)
        logits = head.model(*(maps[name] for name in head.features)) if head else None
        for k, (row, anns) in enumerate(zip(batch_rows, records)):
            image_id = split.image_ids[row]
            fileio.write_text(out / "masks" / f"{image_id}.json", json.dumps(anns))
            masks = masks_of(anns) if anns else np.zeros((0, *split.original_size(row)), bool)
            per_image.append(_mask_row(image_id, anns, masks))
            picture = shown < cfg.visualize
            image = source_image(split, image_id) if picture else None
            if picture:
                save_masks_picture(out / "visualizations" / f"{image_id}_masks.png", image, masks,
                                   f"{image_id}  {len(anns)} SAM masks{suffix}")
            if head is not None:
                full = to_original(logits[k: k + 1], split.family.frame, split.input_size(row),
                                   split.original_size(row))
                pred = full[0].argmax(0)
                refined = refine_by_masks(pred, torch.from_numpy(masks).to(device), n)
                gt = split.crop(row, targets[k])
                image_conf = confusion_matrix_torch(refined, gt, n)
                confusion["refined"] += image_conf
                confusion["head"] += confusion_matrix_torch(pred, gt, n)
                image_ious += image_rows(image_id, image_conf.cpu().numpy(), class_set)
                refined_np = refined.to(torch.uint8).cpu().numpy()
                save_prediction(out / "predictions", image_id, class_set.to_label_ids(refined_np), class_set.source)
                if picture:
                    save_refined_picture(out / "visualizations" / f"{image_id}_refined.png", image,
                                         gt.cpu().numpy(), pred.to(torch.uint8).cpu().numpy(), refined_np,
                                         class_set, f"{image_id}  {head.label}{suffix}")
            shown += picture
        bar.update(len(batch_rows))
    bar.close()
    return _summaries(per_image, image_ious, confusion, class_set if head else None)


def _mask_row(image_id: str, anns: list[dict], masks: np.ndarray) -> dict:
    return {"image_id": image_id, "masks": len(anns),
            "covered": float(masks.any(axis=0).mean()) if len(anns) else 0.0,
            "mean_predicted_iou": float(np.mean([a["predicted_iou"] for a in anns])) if anns else float("nan"),
            "mean_stability_score": float(np.mean([a["stability_score"] for a in anns])) if anns else float("nan")}


def _summaries(per_image: list[dict], image_ious: list[dict], confusion: dict, class_set: ClassSet | None) -> dict:
    """summary.csv's rows: per class refined and head IoU (when refining), then the mean with the mask counts."""
    mean_masks = float(np.mean([r["masks"] for r in per_image])) if per_image else 0.0
    covered = float(np.mean([r["covered"] for r in per_image])) if per_image else 0.0
    if class_set is None:
        return {"per_image": per_image, "summary": [{"class": "all", "masks_per_image": mean_masks,
                                                     "covered": covered}]}
    refined, miou = class_ious(confusion["refined"].cpu().numpy(), class_set)
    alone, miou_head = class_ious(confusion["head"].cpu().numpy(), class_set)
    rows = [{"class": c, "iou": refined[c], "iou_head": alone[c], "masks_per_image": "", "covered": ""}
            for c in refined]
    rows.append({"class": "mean", "iou": miou, "iou_head": miou_head, "masks_per_image": mean_masks,
                 "covered": covered})
    return {"per_image": per_image, "image_ious": image_ious, "summary": rows, "miou": miou, "miou_head": miou_head}


def summary_table(record: dict) -> str:
    """What the command prints: the masks found, and with a head, per class IoU before and after refinement."""
    text = (f"{count(record['masks'], 'mask')} on {count(record['images'], 'image')} "
            f"({record['masks_per_image']:.1f} per image; "
            f"points_per_side {record['generator']['points_per_side']}, pred_iou_thresh "
            f"{record['generator']['pred_iou_thresh']}, stability_score_thresh "
            f"{record['generator']['stability_score_thresh']})")
    if record["masks"] == 0 and record["random_weights"]:
        text += ("\nno mask passed the thresholds: random weights score below upstream's defaults; pass "
                 "--pred-iou-thresh 0 --stability-score-thresh 0 to see masks (as make demo does)")
    if record.get("refined"):
        head = f"head (epoch {record['epoch']})"
        rows = [{"class": r["class"], head: r["iou_head"], HEAD_LABEL: r["iou"]} for r in record["summary"]]
        text += "\n" + format_table(rows, ["class", head, HEAD_LABEL])
    return text + ("\n" + RANDOM_WEIGHTS_NOTE if record["random_weights"] else "")
