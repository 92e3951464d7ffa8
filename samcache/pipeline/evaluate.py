"""`samcache evaluate`: re-evaluate a saved head on a cache split, into a run folder.

``--save-predictions`` writes official-style labelIds PNGs (regular Cityscapes ids) that
cityscapesScripts reads directly. The evaluation itself is ``samcache.evaluation.heads``.
"""

from __future__ import annotations

import time
from pathlib import Path

from samcache.cache.reader import open_cache
from samcache.cache.schema import Fingerprint
from samcache.data.labels import get_class_set
from samcache.evaluation.heads import EvalOutputs, check_fingerprint, evaluate, load_head, summary_rows
from samcache.evaluation.metrics import class_ious
from samcache.cache.datasets import CacheHeadDataset
from samcache.features.device import PASSES, describe_device, resolve_device
from samcache.messages import RANDOM_WEIGHTS_NOTE, random_weights_suffix
from samcache.pipeline.config import now_iso, save_config
from samcache.pipeline.configs import EvaluateConfig
from samcache.pipeline.provenance import COLUMNS as PROVENANCE_COLUMNS
from samcache.pipeline.provenance import provenance, warn_subset, with_columns
from samcache.pipeline.run_folder import run_folder
from samcache.pipeline.runs import format_table, write_csv

SUMMARY_COLUMNS = ["class", "iou"]


def run_evaluate(cfg: EvaluateConfig, progress: bool = True) -> dict:
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
        save_config(cfg, out / "config.yaml", device=device)
        dataset = CacheHeadDataset(cfg.cache, cfg.split, cs, mode="eval", features=ckpt.get("features"))
        warn_subset(provenance(split, len(dataset), random), "evaluate")
        outputs = EvalOutputs(out / "predictions" if cfg.save_predictions else None, cfg.visualize,
                              out / "visualizations", random_weights_suffix(random))
        conf = evaluate(model, dataset, None, cfg.batch_size, cfg.num_workers, device, outputs, progress)
        per_class, miou = class_ious(conf, cs)
        rows = summary_rows(per_class, miou)
        prov = provenance(split, len(dataset), random)
        write_csv(out / "summary.csv", with_columns(rows, prov), SUMMARY_COLUMNS + PROVENANCE_COLUMNS)
        record = {"stage": "evaluate", "provenance": prov, "status": "complete", "started": started,
                  "head": str(cfg.head),
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

