"""`samcache evaluate`: re-evaluate a saved head on a cache split, into a run folder.

``--head`` is a checkpoint, or a head run folder (its best epoch by val mIoU, or ``--epoch last``); the cache
defaults to the one the head was trained on. Scoring the split it was trained on is marked TRAIN=VAL. A cache of
another dataset (made by the same weights) scores the head there, on the classes both datasets label; the run
records both datasets (``dataset``, ``train_dataset``).

``--save-predictions`` writes prediction PNGs in the evaluated dataset's label ids (Cityscapes: labelIds that
cityscapesScripts reads directly). The evaluation itself is ``samcache.evaluation.heads``.
"""

from __future__ import annotations

from pathlib import Path

from samcache.cache.reader import open_cache
from samcache.cache.stores import kind_of
from samcache.cache.schema import Fingerprint
from samcache.data.dataset import Dataset
from samcache.data.datasets import DEFAULT_DATASET, get_dataset
from samcache.data.labels import get_class_set
from samcache.errors import SamcacheError
from samcache.evaluation.heads import EvalOutputs, check_fingerprint, evaluate, load_head, summary_rows
from samcache.evaluation.metrics import IMAGE_COLUMNS, class_ious
from samcache.evaluation.datasets import CacheHeadDataset
from samcache.features.device import describe_device, resolve_device
from samcache.messages import RANDOM_WEIGHTS_NOTE, random_weights_suffix
from samcache.pipeline.configs import EvaluateConfig
from samcache.pipeline.head_checkpoints import choose_checkpoint
from samcache.pipeline.provenance import COLUMNS as PROVENANCE_COLUMNS
from samcache.pipeline.provenance import TRAIN_COLUMNS, provenance, training, warn_subset, warn_train_is_val
from samcache.pipeline.provenance import with_columns
from samcache.pipeline.runs import PER_IMAGE, RunRecord, format_table, write_csv
from samcache.pipeline.stage import run_stage

SUMMARY_COLUMNS = ["class", "iou"]  # the terminal's table; summary.csv adds the epoch and the provenance
CSV_COLUMNS = SUMMARY_COLUMNS + ["epoch"] + PROVENANCE_COLUMNS + TRAIN_COLUMNS


def head_cache(ckpt: dict) -> str:
    """The cache a head was trained on, as its checkpoint names it (an absolute path; older ones: as given)."""
    return str(ckpt.get("cache") or ckpt["config"]["cache"])


def trained_on(ckpt: dict, cache: str, split: str) -> dict:
    """The head's TRAIN_COLUMNS as its checkpoint records them; TRAIN=VAL when ``split`` of ``cache`` is the split
    it was trained on (older checkpoints name only the split, and were trained on Cityscapes)."""
    train = ckpt.get("train") or {"split": ckpt["config"].get("train_split")}
    theirs = head_cache(ckpt)
    same_cache = kind_of(cache).same(cache, theirs)
    return training(train.get("split"), train.get("images"), train.get("split_images"),
                    same_cache and train.get("split") == split, bool(train.get("grew")), train_dataset(ckpt).domain)


def train_dataset(ckpt: dict) -> Dataset:
    """The dataset a head was trained on (checkpoints before datasets were data: Cityscapes)."""
    train = ckpt.get("train") or {}
    return get_dataset(train.get("dataset", DEFAULT_DATASET), train.get("condition"))


def run_evaluate(cfg: EvaluateConfig, progress: bool = True) -> dict:
    """Re-evaluate a saved head (a checkpoint, or a run folder's best or last epoch) on a cache split (by default of
    the cache it was trained on); writes summary.csv (and predictions) to ``out``."""
    device = resolve_device(cfg.device)
    choice = choose_checkpoint(cfg.head, cfg.epoch)
    model, ckpt = load_head(choice.path, device)
    cache = cfg.cache or head_cache(ckpt)
    try:
        split = open_cache(cache).split(cfg.split)
    except SamcacheError as exc:
        if cfg.cache:
            raise
        raise SamcacheError(f"{exc} (the cache {choice.path} was trained on; pass --cache)") from None
    cfg = cfg.model_copy(update={"cache": cache})  # config.yaml and run.json name the cache evaluated
    check_fingerprint(ckpt["fingerprint"], split, choice.path)
    # the head's classes read from the evaluated split's labels, scored on those both datasets label
    cs = get_class_set(ckpt["class_set"], split.dataset).shared_with(train_dataset(ckpt))
    random = Fingerprint.from_attrs(ckpt["fingerprint"]).random_weights
    elsewhere = "" if split.dataset == train_dataset(ckpt) else f"{split.dataset.domain}-"  # another dataset's cache
    out = Path(cfg.out) if cfg.out else choice.path.parent / f"eval-{elsewhere}{cfg.split}-epoch{ckpt['epoch']}"
    with run_stage("evaluate", cfg, out, [cache, choice.path], device=device) as run:
        dataset = CacheHeadDataset(cache, cfg.split, cs, mode="eval", features=ckpt.get("features"))
        prov = {**provenance(split, len(dataset), random), **trained_on(ckpt, cache, cfg.split)}
        warn_subset(prov, "evaluate")
        if prov["train_is_val"]:
            warn_train_is_val(cfg.split, "evaluate")
        outputs = EvalOutputs(out / "predictions" if cfg.save_predictions else None, cfg.visualize,
                              out / "visualizations", random_weights_suffix(random), per_image=[])
        conf = evaluate(model, dataset, None, cfg.batch_size, cfg.num_workers, device, outputs, progress)
        per_class, miou = class_ious(conf, dataset.class_set)
        rows = summary_rows(per_class, miou)
        write_csv(out / "summary.csv", with_columns(rows, {**prov, "epoch": ckpt["epoch"]}, CSV_COLUMNS[2:]),
                  CSV_COLUMNS)
        write_csv(out / PER_IMAGE, outputs.per_image, IMAGE_COLUMNS)
        return run.finish(RunRecord.from_json({  # None: filled in by the skeleton, in this place
            "stage": "evaluate", "provenance": prov, "status": "complete", "started": None, "head": str(choice.path),
            "chosen": choice.chosen, "head_choice": choice.note, "epoch": ckpt["epoch"], "split": cfg.split,
            "images": len(dataset), "classes": ckpt["class_set"], "cache": str(cache), "seconds": None, "miou": miou,
            "summary": rows, "device": describe_device(device), "fingerprint": split.fingerprint.describe(),
            "random_weights": random, "encoder_passes": None, "config": None, "out": None}))


def head_table(rows: list[dict], random_weights: bool = False) -> str:
    table = format_table(rows, SUMMARY_COLUMNS)
    return table + ("\n" + RANDOM_WEIGHTS_NOTE if random_weights else "")

