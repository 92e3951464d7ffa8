"""Evaluate a head on a cache split: predictions at original resolution, confusion-matrix IoU.

IoU is dataset-level, TP / (TP + FP + FN) over all pixels whose ground truth is not void,
as cityscapesScripts computes it. ``--save-predictions`` writes official-style labelIds PNGs
(regular Cityscapes ids) that cityscapesScripts' evaluation reads directly.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from samcache.cache.reader import open_cache
from samcache.cache.schema import Fingerprint
from samcache.data.labels import ClassSet, get_class_set
from samcache.errors import SamcacheError
from samcache.features.encoder import describe_device, resolve_device
from samcache.features.head import SemanticHead, to_original
from samcache.pipeline.head_data import CacheHeadDataset, iterate
from samcache.pipeline.metrics import confusion_matrix, iou_from_confusion
from samcache.pipeline.runs import format_table, write_csv, write_record
from samcache.pipeline.visualize import save_overlay, source_image


@torch.no_grad()
def evaluate(model: SemanticHead, dataset: CacheHeadDataset, preloaded, batch_size: int, num_workers: int,
             device: torch.device, predictions_dir: Path | None = None, visualize: int = 0,
             vis_dir: Path | None = None, progress: bool = True) -> np.ndarray:
    """Confusion matrix (ground truth x prediction) over the dataset's rows."""
    model.eval()
    cs, split = dataset.class_set, dataset.split
    conf = np.zeros((cs.num_classes, cs.num_classes), np.int64)
    shown = 0
    bar = tqdm(total=len(dataset), unit="img", desc="evaluate", disable=not progress, leave=False)
    for rows, embeddings, gts in iterate(dataset, preloaded, list(range(len(dataset))), batch_size, num_workers,
                                         device):
        logits = model(embeddings.float())
        for k, row in enumerate(rows):  # one image at a time: 19 x 2048 x 1024 logits is 150 MB
            full = to_original(logits[k: k + 1], tuple(split.input_sizes[row]), tuple(split.original_sizes[row]))
            pred = full[0].argmax(0).to(torch.uint8).cpu().numpy()
            gt = gts[k].cpu().numpy()
            conf += confusion_matrix(pred, gt, cs.num_classes)
            image_id = split.image_ids[row]
            if predictions_dir is not None:
                city = image_id.rsplit("_", 2)[0]
                (predictions_dir / city).mkdir(parents=True, exist_ok=True)
                Image.fromarray(cs.pred_label_ids[pred]).save(predictions_dir / city / f"{image_id}_labelIds.png")
            if shown < visualize:
                shown += 1
                image = source_image(split.attrs.get("data_root"), split.name, image_id)
                save_overlay(vis_dir / f"{image_id}.png", image, gt, pred, cs, f"{image_id}  semantic head")
        bar.update(len(rows))
    bar.close()
    return conf


def class_ious(conf: np.ndarray, class_set: ClassSet) -> tuple[dict[str, float], float]:
    """Per evaluated class IoU and their mean (seed5's 'other' is trained but not averaged)."""
    iou = iou_from_confusion(conf)
    per_class = {class_set.class_names[c]: float(iou[c]) for c in class_set.eval_indices}
    values = [v for v in per_class.values() if np.isfinite(v)]
    return per_class, float(np.mean(values)) if values else float("nan")


def summary_rows(per_class: dict[str, float], miou: float) -> list[dict]:
    return [{"class": k, "iou": v} for k, v in per_class.items()] + [{"class": "mean", "iou": miou}]


def load_head(path: str | Path, device: torch.device) -> tuple[SemanticHead, dict]:
    path = Path(path)
    if not path.is_file():
        raise SamcacheError(f"head checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        model = SemanticHead(len(ckpt["class_names"]), ckpt["config"]["width"])
        model.load_state_dict(ckpt["model"])
    except Exception as exc:
        raise SamcacheError(f"{path} is not a samcache head checkpoint ({type(exc).__name__})") from None
    return model.to(device), ckpt


def check_fingerprint(head_fp: dict, split, what: str) -> None:
    theirs, ours = Fingerprint.from_attrs(head_fp), split.fingerprint
    if not theirs.same_model(ours):
        raise SamcacheError(f"{what} was trained on {theirs.describe()} embeddings; split {split.name} of "
                            f"{split.cache_path} holds {ours.describe()}")


@dataclass
class EvaluateConfig:
    head: str = ""
    cache: str = "cache/cityscapes.zarr"
    split: str = "val"
    batch_size: int = 8
    num_workers: int = 2
    device: str = "auto"
    out: str | None = None
    save_predictions: bool = False
    visualize: int = 0


def evaluate_head(cfg: EvaluateConfig, progress: bool = True) -> dict:
    """Re-evaluate a saved head on a cache split; writes summary.csv (and predictions) to ``out``."""
    device = resolve_device(cfg.device)
    model, ckpt = load_head(cfg.head, device)
    split = open_cache(cfg.cache).split(cfg.split)
    check_fingerprint(ckpt["fingerprint"], split, cfg.head)
    cs = get_class_set(ckpt["class_set"])
    out = Path(cfg.out) if cfg.out else Path(cfg.head).parent / f"eval-{cfg.split}-epoch{ckpt['epoch']}"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    dataset = CacheHeadDataset(cfg.cache, cfg.split, cs, mode="eval")
    conf = evaluate(model, dataset, None, cfg.batch_size, cfg.num_workers, device,
                    out / "predictions" if cfg.save_predictions else None, cfg.visualize, out / "visualizations",
                    progress)
    per_class, miou = class_ious(conf, cs)
    rows = summary_rows(per_class, miou)
    write_csv(out / "summary.csv", rows, ["class", "iou"])
    record = {"stage": "evaluate", "head": str(cfg.head), "epoch": ckpt["epoch"], "split": cfg.split,
              "seconds": time.perf_counter() - t0, "miou": miou, "summary": rows, "device": describe_device(device),
              "random_weights": Fingerprint.from_attrs(ckpt["fingerprint"]).random_weights, "config": asdict(cfg),
              "out": str(out)}
    write_record(out, record)
    return record


def head_table(rows: list[dict]) -> str:
    return format_table(rows, ["class", "iou"])
