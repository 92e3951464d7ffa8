"""Stage 2b (Phase 2): train the semantic head on cached embeddings. Never loads the encoder.

Read top to bottom: config -> data (cache split, preloaded or via DataLoader) -> model and
Adam -> epochs of (shuffle, forward, CE in the 1024 frame, step) -> val mIoU -> checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from samcache.cache.reader import open_cache
from samcache.data.labels import IGNORE, get_class_set
from samcache.errors import SamcacheError
from samcache.features.encoder import describe_device, resolve_device
from samcache.features.head import SemanticHead, to_frame
from samcache.pipeline.config import new_run_dir, now_iso, save_config
from samcache.pipeline.evaluate import check_fingerprint, class_ious, evaluate, summary_rows
from samcache.pipeline.head_data import CacheHeadDataset, choose_preload, iterate, preload, preload_bytes
from samcache.pipeline.runs import read_csv, write_csv, write_record

PRELOAD = ("auto", "ram", "gpu", "off")


@dataclass
class HeadConfig:
    cache: str = "cache/cityscapes.zarr"
    train_split: str = "train"
    val_split: str = "val"
    classes: str = "seed5"
    epochs: int = 5
    batch_size: int = 16
    lr: float = 1e-3
    width: int = 256
    num_workers: int = 2
    preload: str = "auto"
    flip: bool = False
    seed: int = 0
    out: str | None = None
    resume: str | None = None
    save_predictions: bool = False
    visualize: int = 4
    device: str = "auto"
    limit: int | None = None  # train images (quick experiments)


def _checkpoints(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob("head_epoch_*.pt"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))


def _load_data(cfg: HeadConfig, class_set, device):
    cache = open_cache(cfg.cache)
    train, val = cache.split(cfg.train_split), cache.split(cfg.val_split)
    if not train.fingerprint.same_model(val.fingerprint):
        raise SamcacheError(f"splits {train.name} ({train.fingerprint.describe()}) and {val.name} "
                            f"({val.fingerprint.describe()}) of {cfg.cache} come from different models")
    train_rows = train.require_complete()[: cfg.limit]
    train_ds = CacheHeadDataset(cfg.cache, cfg.train_split, class_set, train_rows, mode="train")
    val_ds = CacheHeadDataset(cfg.cache, cfg.val_split, class_set, mode="eval")
    nbytes = preload_bytes(train, train_rows, "train") + preload_bytes(val, val_ds.rows, "eval")
    mode = choose_preload(cfg.preload, nbytes, device)
    if mode == "gpu" and device.type != "cuda":
        raise SamcacheError("--preload gpu needs a CUDA device")
    where = device if mode == "gpu" else torch.device("cpu")
    train_mem = preload(train_ds, where) if mode != "off" else None
    val_mem = preload(val_ds, where) if mode != "off" else None
    return train, train_ds, val_ds, train_mem, val_mem, mode


def train_head(cfg: HeadConfig, progress: bool = True) -> dict:
    if cfg.preload not in PRELOAD:
        raise SamcacheError(f"--preload must be one of {', '.join(PRELOAD)}")
    device = resolve_device(cfg.device)
    class_set = get_class_set(cfg.classes)
    out = Path(cfg.resume or cfg.out or new_run_dir("head"))
    out.mkdir(parents=True, exist_ok=True)
    t_start, started = time.perf_counter(), now_iso()

    # data: from the cache only
    train, train_ds, val_ds, train_mem, val_mem, preload_mode = _load_data(cfg, class_set, device)
    load_seconds = time.perf_counter() - t_start

    # model and optimizer, seeded; or the last checkpoint of the run being resumed
    torch.manual_seed(cfg.seed)
    model = SemanticHead(class_set.num_classes, cfg.width).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start_epoch, history = 1, []
    if cfg.resume:
        done = _checkpoints(out)
        if not done:
            raise SamcacheError(f"nothing to resume in {out} (no head_epoch_N.pt)")
        ckpt = torch.load(done[-1], map_location=device, weights_only=False)
        check_fingerprint(ckpt["fingerprint"], train, done[-1])
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch = ckpt["epoch"] + 1
        history = [r for r in read_csv(out / "metrics.csv") if int(r["epoch"]) < start_epoch]
    save_config(cfg, out / "config.yaml", {"preload_resolved": preload_mode})

    train_seconds = 0.0
    per_class, miou = {}, float("nan")
    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)  # the epoch's order, resumable
        order = torch.randperm(len(train_ds), generator=gen).tolist()
        losses = []
        bar = tqdm(total=len(order), unit="img", desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress)
        for _, embeddings, targets in iterate(train_ds, train_mem, order, cfg.batch_size, cfg.num_workers, device):
            embeddings, targets = embeddings.float(), targets.long()
            if cfg.flip:
                flip = torch.rand(len(targets), generator=gen) < 0.5
                embeddings[flip] = embeddings[flip].flip(-1)
                targets[flip] = targets[flip].flip(-1)
            logits = to_frame(model(embeddings))
            loss = F.cross_entropy(logits, targets, ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.update(len(targets))
            bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        bar.close()
        train_seconds += time.perf_counter() - t0

        last = epoch == cfg.epochs
        conf = evaluate(model, val_ds, val_mem, cfg.batch_size, cfg.num_workers, device,
                        out / "predictions" if (last and cfg.save_predictions) else None,
                        cfg.visualize if last else 0, out / "visualizations", progress)
        per_class, miou = class_ious(conf, class_set)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_miou": miou,
                        **{f"iou_{k}": v for k, v in per_class.items()},
                        "epoch_seconds": time.perf_counter() - t0})
        write_csv(out / "metrics.csv", history)
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                    "config": asdict(cfg), "class_set": cfg.classes, "class_names": list(class_set.class_names),
                    "fingerprint": train.fingerprint.to_attrs(), "val_miou": miou}, out / f"head_epoch_{epoch}.pt")
        if progress:
            tqdm.write(f"epoch {epoch}: train loss {np.mean(losses):.4f}, val mIoU {miou:.4f}")

    if not per_class:  # resumed a finished run: report its last epoch
        per_class = {k[4:]: float(v) for k, v in history[-1].items() if k.startswith("iou_")}
        miou = float(history[-1]["val_miou"])
    rows = summary_rows(per_class, miou)
    write_csv(out / "summary.csv", rows, ["class", "iou"])
    record = {"stage": "head", "started": started, "seconds": round(time.perf_counter() - t_start, 3),
              "load_seconds": load_seconds, "train_seconds": train_seconds, "epochs": cfg.epochs,
              "epochs_run": cfg.epochs - start_epoch + 1, "train_images": len(train_ds), "val_images": len(val_ds),
              "batch_size": cfg.batch_size, "preload": preload_mode, "classes": cfg.classes, "cache": cfg.cache,
              "device": describe_device(device), "random_weights": train.fingerprint.random_weights,
              "encoder_passes": 0, "miou": miou, "summary": rows, "config": asdict(cfg), "out": str(out)}
    write_record(out, record)
    return record
