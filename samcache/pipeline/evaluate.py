"""Evaluate a head on a cache split: predictions at original resolution, confusion-matrix IoU.

IoU is dataset-level, TP / (TP + FP + FN) over all pixels whose ground truth is not void,
as cityscapesScripts computes it. The confusion matrix is accumulated on the device; only
predictions that are saved or drawn come back to the host. ``--save-predictions`` writes
official-style labelIds PNGs (regular Cityscapes ids) that cityscapesScripts reads directly.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from samcache import fileio
from samcache.cache.datasets import CacheHeadDataset, iterate
from samcache.cache.reader import open_cache
from samcache.cache.schema import Fingerprint
from samcache.data.labels import get_class_set
from samcache.errors import SamcacheError
from samcache.evaluation.metrics import class_ious, confusion_matrix_torch
from samcache.evaluation.visualize import save_overlay, source_image
from samcache.features.encoder import PASSES, describe_device, resolve_device
from samcache.features.head import build_head
from samcache.features.preprocess import postprocess_logits
from samcache.messages import RANDOM_WEIGHTS_NOTE, random_weights_suffix
from samcache.pipeline.config import now_iso, save_config
from samcache.pipeline.configs import EvaluateConfig
from samcache.pipeline.run_folder import run_folder
from samcache.pipeline.runs import format_table, write_csv

SUMMARY_COLUMNS = ["class", "iou"]


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: CacheHeadDataset, preloaded, batch_size: int, num_workers: int,
             device: torch.device, predictions_dir: Path | None = None, visualize: int = 0,
             vis_dir: Path | None = None, progress: bool = True, title_suffix: str = "") -> np.ndarray:
    """Confusion matrix (ground truth x prediction) over the dataset's rows."""
    model.eval()
    cs, split = dataset.class_set, dataset.split
    conf = torch.zeros((cs.num_classes, cs.num_classes), dtype=torch.int64, device=device)
    shown = 0
    bar = tqdm(total=len(dataset), unit="img", desc="evaluate", disable=not progress, leave=False)
    for rows, features, gts in iterate(dataset, preloaded, list(range(len(dataset))), batch_size, num_workers,
                                       device):
        logits = model(*(f.float() for f in features))
        for k, row in enumerate(rows):  # one image at a time: 19 x 2048 x 1024 logits is 150 MB
            full = postprocess_logits(logits[k: k + 1], split.input_sizes[row], split.original_sizes[row])
            pred = full[0].argmax(0).to(torch.uint8)
            conf += confusion_matrix_torch(pred, gts[k], cs.num_classes)
            image_id = split.image_ids[row]
            if predictions_dir is not None:
                save_prediction(predictions_dir, image_id, cs.to_label_ids(pred.cpu().numpy()))
            if shown < visualize:
                shown += 1
                image = source_image(split.attrs.get("data_root"), split.name, image_id)
                save_overlay(vis_dir / f"{image_id}.png", image, gts[k].cpu().numpy(), pred.cpu().numpy(), cs,
                             f"{image_id}  semantic head{title_suffix}")
        bar.update(len(rows))
    bar.close()
    return conf.cpu().numpy()


def save_prediction(predictions_dir: Path, image_id: str, label_ids: np.ndarray) -> None:
    """``<dir>/<city>/<image_id>_labelIds.png``, the layout cityscapesScripts' evaluation expects."""
    city = image_id.rsplit("_", 2)[0]
    (predictions_dir / city).mkdir(parents=True, exist_ok=True)
    fileio.write_with(predictions_dir / city / f"{image_id}_labelIds.png",
                      lambda tmp: Image.fromarray(label_ids).save(tmp, format="PNG"))


def summary_rows(per_class: dict[str, float], miou: float) -> list[dict]:
    return [{"class": k, "iou": v} for k, v in per_class.items()] + [{"class": "mean", "iou": miou}]


def load_head(path: str | Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """A head checkpoint, loaded with weights_only=True (no code runs from the file)."""
    path = Path(path)
    if not path.is_file():
        raise SamcacheError(f"head checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model = build_head(ckpt.get("head", "main"), len(ckpt["class_names"]), ckpt["config"]["width"])
        model.load_state_dict(ckpt["model"])
        get_class_set(ckpt["class_set"])
    except Exception as exc:
        raise SamcacheError(f"{path} is not a readable samcache head checkpoint ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:120] if str(exc) else 'damaged'})") from None
    return model.to(device), ckpt


def check_fingerprint(head_fp: dict, split, what: str) -> None:
    theirs, ours = Fingerprint.from_attrs(head_fp), split.fingerprint
    if not theirs.same_model(ours):
        raise SamcacheError(f"{what} was trained on {theirs.describe()} embeddings; split {split.name} of "
                            f"{split.cache_path} holds {ours.describe()}")


def evaluate_head(cfg: EvaluateConfig, progress: bool = True) -> dict:
    """Re-evaluate a saved head on a cache split; writes summary.csv (and predictions) to ``out``."""
    device = resolve_device(cfg.device)
    model, ckpt = load_head(cfg.head, device)
    split = open_cache(cfg.cache).split(cfg.split)
    check_fingerprint(ckpt["fingerprint"], split, cfg.head)
    cs = get_class_set(ckpt["class_set"])
    random = Fingerprint.from_attrs(ckpt["fingerprint"]).random_weights
    out = Path(cfg.out) if cfg.out else Path(cfg.head).parent / f"eval-{cfg.split}-epoch{ckpt['epoch']}"
    started, t0, passes = now_iso(), time.perf_counter(), PASSES["images"]
    with run_folder(out, "evaluate", cfg.overwrite, started, reads=[cfg.cache, cfg.head]) as folder:
        save_config(cfg, out / "config.yaml")
        dataset = CacheHeadDataset(cfg.cache, cfg.split, cs, mode="eval", features=ckpt.get("features"))
        conf = evaluate(model, dataset, None, cfg.batch_size, cfg.num_workers, device,
                        out / "predictions" if cfg.save_predictions else None, cfg.visualize, out / "visualizations",
                        progress, random_weights_suffix(random))
        per_class, miou = class_ious(conf, cs)
        rows = summary_rows(per_class, miou)
        write_csv(out / "summary.csv", rows, SUMMARY_COLUMNS)
        record = {"stage": "evaluate", "status": "complete", "started": started, "head": str(cfg.head),
                  "epoch": ckpt["epoch"], "split": cfg.split, "images": len(dataset), "classes": ckpt["class_set"],
                  "cache": str(cfg.cache), "seconds": round(time.perf_counter() - t0, 3), "miou": miou,
                  "summary": rows, "device": describe_device(device), "fingerprint": split.fingerprint.describe(),
                  "random_weights": random,
                  "encoder_passes": PASSES["images"] - passes, "config": cfg.dump(), "out": str(out)}
        folder.record(record)
        folder.commit()
    return record


def head_table(rows: list[dict], random_weights: bool = False) -> str:
    table = format_table(rows, SUMMARY_COLUMNS)
    return table + ("\n" + RANDOM_WEIGHTS_NOTE if random_weights else "")

