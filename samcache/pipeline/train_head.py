"""Stage 2b (Phase 2): train the semantic head on cached embeddings. Never loads the encoder.

Read top to bottom: config -> run folder (new, or the run being resumed) -> data (cache split,
preloaded or via DataLoader) -> model and Adam, or the last good checkpoint -> epochs of
(shuffle, forward, CE in the family's input frame, step) -> val mIoU -> checkpoint (atomic) -> summary.
``fit_head`` is the same loop for a notebook: it returns the model, and writes files only with ``out=``.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from samcache import fileio
from samcache.cache.datasets import CacheHeadDataset, choose_preload, iterate, preload, preload_bytes
from samcache.cache.reader import Cache, CacheSplit, open_cache
from samcache.cache.schema import FINGERPRINT_ATTR
from samcache.data.labels import IGNORE, get_class_set
from samcache.errors import Interrupted, SamcacheError, SamcacheWarning
from samcache.evaluation.heads import EvalOutputs, check_fingerprint, evaluate, summary_rows
from samcache.evaluation.metrics import class_ious
from samcache.features.device import PASSES, autocast, configure_matmul, describe_device, resolve_device
from samcache.features.frames import to_frame
from samcache.features.head import build_head, head_features
from samcache.messages import INTERRUPT_ADVICE, random_weights_suffix
from samcache.pipeline.config import new_run_dir, now_iso, save_config
from samcache.pipeline.configs import HeadConfig
from samcache.pipeline.provenance import COLUMNS as PROVENANCE_COLUMNS
from samcache.pipeline.provenance import provenance, warn_subset, with_columns
from samcache.pipeline.run_folder import resumed_folder, run_folder
from samcache.pipeline.runs import read_csv, read_record, write_csv


def checkpoint_path(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / f"head_epoch_{epoch}.pt"


def _checkpoints(run_dir: Path) -> list[Path]:
    found = [p for p in run_dir.glob("head_epoch_*.pt") if p.stem.rsplit("_", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.stem.rsplit("_", 1)[1]))


def last_good_checkpoint(run_dir: Path) -> tuple[dict, Path]:
    """The newest checkpoint that loads; damaged ones (a kill during an old, non-atomic save) are skipped."""
    for path in reversed(_checkpoints(run_dir)):
        try:
            return torch.load(path, map_location="cpu", weights_only=True), path
        except Exception as exc:
            warnings.warn(f"{path} is damaged ({type(exc).__name__}); skipping it", SamcacheWarning)
    raise SamcacheError(f"nothing to resume in {run_dir} (no readable head_epoch_N.pt); start it again with "
                        f"--out {run_dir} --overwrite")


def _finished(run_dir: Path) -> bool:
    try:
        return read_record(run_dir).get("status") == "complete"
    except SamcacheError:
        return False


@dataclass
class HeadData:
    """What training reads: the train split (its fingerprint goes into checkpoints), both datasets, and the
    preloaded tensors (None when streamed through DataLoader workers)."""

    train: CacheSplit
    train_ds: CacheHeadDataset
    val_ds: CacheHeadDataset
    train_mem: tuple | None
    val_mem: tuple | None
    preload: str


@dataclass
class HeadState:
    """The model being trained, its optimizer, and where training (re)starts."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    start_epoch: int = 1
    history: list = field(default_factory=list)  # one metrics row per epoch done


@dataclass
class HeadResult:
    """A trained head and its per-epoch metrics (train loss, val mIoU, per-class IoU, seconds)."""

    model: torch.nn.Module
    history: list[dict]
    per_class: dict[str, float]
    miou: float
    train_seconds: float


def _load_data(cfg: HeadConfig, class_set, device) -> HeadData:
    cache = open_cache(cfg.cache)
    train, val = cache.split(cfg.train_split), cache.split(cfg.val_split)
    if not train.fingerprint.same_model(val.fingerprint):
        raise SamcacheError(f"splits {train.name} ({train.fingerprint.describe()}) and {val.name} "
                            f"({val.fingerprint.describe()}) of {cfg.cache} come from different models")
    train_rows = train.require_complete()[: cfg.limit]
    names = head_features(cfg.head, cache.feature_shapes, cache.main_feature)
    train_ds = CacheHeadDataset(cfg.cache, cfg.train_split, class_set, train_rows, mode="train", features=names)
    val_ds = CacheHeadDataset(cfg.cache, cfg.val_split, class_set, mode="eval", features=names)
    nbytes = preload_bytes(train, train_rows, "train", names) + preload_bytes(val, val_ds.rows, "eval", names)
    mode = choose_preload(cfg.preload, nbytes, device)
    if mode == "gpu" and device.type != "cuda":
        raise SamcacheError("preload 'gpu' needs a CUDA device")
    where = device if mode == "gpu" else torch.device("cpu")
    train_mem = preload(train_ds, where) if mode != "off" else None
    val_mem = preload(val_ds, where) if mode != "off" else None
    return HeadData(train, train_ds, val_ds, train_mem, val_mem, mode)


def _new_state(cfg: HeadConfig, class_set, data: HeadData, device) -> HeadState:
    """The head, seeded, with input channels from the cache's family; and its Adam."""
    torch.manual_seed(cfg.seed)
    channels = tuple(data.train.family.head_channels()[n] for n in data.train_ds.feature_names)
    model = build_head(cfg.head, class_set.num_classes, cfg.width, channels).to(device)
    return HeadState(model, torch.optim.Adam(model.parameters(), lr=cfg.lr))


def fit_head(cache, train: CacheSplit | str = "train", val: CacheSplit | str = "val", *,
             out: str | Path | None = None, progress: bool = False, **options) -> tuple[torch.nn.Module, list[dict]]:
    """Train a semantic head on a cache's frozen features; return ``(model, metrics)``.

    ``cache``: a path or an opened ``Cache``. ``options``: any ``samcache train-head`` setting (``epochs``,
    ``batch_size``, ``lr``, ``head``, ``classes``, ``seed``, ``device``, ...). The model maps the family's
    feature maps, e.g. (B,256,64,64), to (B,classes,64,64) logits; ``metrics`` has one dict per epoch
    (``train_loss``, ``val_miou``, ``iou_<class>``). A run folder (checkpoints, CSVs, config.yaml) is written
    only when ``out`` is given, exactly as ``samcache train-head --out`` writes it. ``train``/``val``: split
    names, or ``CacheSplit``s of this cache. The model remembers the weights whose features it learnt, so
    that ``evaluate_head`` refuses splits that other weights made.
    """
    opened = cache if isinstance(cache, Cache) else open_cache(str(cache))
    train, val = (opened.as_split(s, own=True).name for s in (train, val))  # one cache: the config's
    cfg = HeadConfig(**{**options, "cache": opened.path, "train_split": train, "val_split": val,
                        "out": None if out is None else str(out)})
    if out is not None:
        result = _train_in_folder(cfg, progress)[1]
    else:
        device = resolve_device(cfg.device)
        configure_matmul(device, cfg.precision)
        class_set = get_class_set(cfg.classes)
        data = _load_data(cfg, class_set, device)
        result = _train(cfg, class_set, data, _new_state(cfg, class_set, data, device), device, None, progress)
    setattr(result.model, FINGERPRINT_ATTR, opened.split(train).fingerprint)
    return result.model.eval(), result.history


def train_head(cfg: HeadConfig, progress: bool = True) -> dict:
    """``samcache train-head``: train into a run folder (new, or ``cfg.resume``); return the run's record."""
    return _train_in_folder(cfg, progress)[0]


def _train_in_folder(cfg: HeadConfig, progress: bool) -> tuple[dict, HeadResult]:
    device = resolve_device(cfg.device)
    configure_matmul(device, cfg.precision)
    class_set = get_class_set(cfg.classes)
    started, t_start, passes = now_iso(), time.perf_counter(), PASSES["images"]
    if cfg.resume:
        out = Path(cfg.resume)
        ckpt, ckpt_path = last_good_checkpoint(out)
        if cfg.epochs < ckpt["epoch"]:
            raise SamcacheError(f"--epochs {cfg.epochs} is fewer than the {ckpt['epoch']} epochs already run in {out}")
        if cfg.epochs == ckpt["epoch"] and _finished(out):  # nothing to train: leave its results as they are
            raise SamcacheError(f"{out} has finished all {cfg.epochs} epochs; pass a larger --epochs to train on")
        folder = resumed_folder(out, "head")
    else:
        out, ckpt = Path(cfg.out or new_run_dir("head")), None
        folder = run_folder(out, "head", cfg.overwrite, started, reads=[cfg.cache])
    with folder as run:
        save_config(cfg, out / "config.yaml", device=device)
        data = _load_data(cfg, class_set, device)
        warn_subset(provenance(data.train, len(data.train_ds), False), "train-head")
        load_seconds = time.perf_counter() - t_start
        state = _new_state(cfg, class_set, data, device)
        if ckpt is not None:  # the last good checkpoint of the run being resumed
            check_fingerprint(ckpt["fingerprint"], data.train, ckpt_path)
            state.model.load_state_dict(ckpt["model"])
            state.optimizer.load_state_dict(ckpt["optimizer"])
            state.start_epoch = ckpt["epoch"] + 1
            state.history = [r for r in read_csv(out / "metrics.csv") if int(r["epoch"]) < state.start_epoch]
        try:
            result = _train(cfg, class_set, data, state, device, _Checkpoints(out, run), progress)
        except KeyboardInterrupt as exc:
            # what is on disk, not what was computed: the interrupt may have cut the last checkpoint's write
            saved = _checkpoints(out)
            done = int(saved[-1].stem.rsplit("_", 1)[1]) if saved else 0
            kept = "epoch 1 is" if done == 1 else f"epochs 1-{done} are"
            advice = (INTERRUPT_ADVICE["train-head-kept"].format(kept=kept, out=out) if run.committed and done
                      else INTERRUPT_ADVICE["train-head-none"])
            raise Interrupted(advice, getattr(exc, "exit_code", 130)) from None

        rows = summary_rows(result.per_class, result.miou)
        random = data.train.fingerprint.random_weights
        trained = provenance(data.train, len(data.train_ds), random)
        prov = {**provenance(data.val_ds.split, len(data.val_ds), random), "train_split": data.train.name,
                "train_images": len(data.train_ds), "train_split_images": trained["split_images"]}
        write_csv(out / "summary.csv", with_columns(rows, prov), ["class", "iou"] + PROVENANCE_COLUMNS)
        epochs_seconds = sum(float(h["epoch_seconds"]) for h in result.history)  # every epoch, resumed runs too
        fp = data.train.fingerprint
        record = {"stage": "head", "status": "complete", "started": started,
                  "seconds": round(load_seconds + epochs_seconds, 3), "load_seconds": load_seconds,
                  "train_seconds": result.train_seconds, "epochs": cfg.epochs,
                  "epochs_run": cfg.epochs - state.start_epoch + 1, "train_images": len(data.train_ds),
                  "val_images": len(data.val_ds), "preload": data.preload, "classes": cfg.classes, "cache": cfg.cache,
                  "device": describe_device(device),
                  "fingerprint": fp.describe(), "random_weights": fp.random_weights,
                  "encoder_passes": PASSES["images"] - passes, "miou": result.miou, "summary": rows,
                  "config": cfg.dump(), "provenance": prov, "out": str(out)}
        run.record(record)
    return record, result


@dataclass
class _Checkpoints:
    """Where a run folder keeps each epoch: metrics.csv, then head_epoch_N.pt (atomic), then the record."""

    out: Path
    run: object

    def save(self, cfg: HeadConfig, class_set, data: HeadData, state: HeadState, epoch: int, miou: float) -> None:
        ckpt = {"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(), "epoch": epoch,
                "config": cfg.dump(), "head": cfg.head, "features": list(data.train_ds.feature_names),
                "class_set": cfg.classes, "class_names": list(class_set.class_names),
                "fingerprint": data.train.fingerprint.to_attrs(), "val_miou": miou}
        write_csv(self.out / "metrics.csv", state.history)  # before the checkpoint: a resume rewrites this row
        fileio.write_with(checkpoint_path(self.out, epoch), lambda tmp: torch.save(ckpt, tmp))
        self.run.commit()
        self.run.record({"stage": "head", "status": "running", "epochs_done": epoch, "config": cfg.dump()})


def _diverged(cfg: HeadConfig, epoch: int, train_loss: float, checkpoints: "_Checkpoints | None",
              weights_finite: bool = True) -> None:
    """Stop a diverged run: earlier epochs stay on disk, the record says "diverged" (report refuses it)."""
    kept = ""
    run, out = (checkpoints.run, checkpoints.out) if checkpoints is not None else (None, None)
    if run is not None and run.committed:
        kept = f"; epochs 1-{epoch - 1} are kept in {out}" if epoch > 2 else f"; epoch 1 is kept in {out}"
        run.record({"stage": "head", "status": "diverged", "epochs_done": epoch - 1, "config": cfg.dump()})
    what = f"train loss {train_loss:.4g}" + ("" if weights_finite else ", weights not finite")
    raise SamcacheError(f"training diverged in epoch {epoch}: {what} (--lr {cfg.lr:g}); lower --lr{kept}")


def _train(cfg: HeadConfig, class_set, data: HeadData, state: HeadState, device, checkpoints: _Checkpoints | None,
           progress: bool) -> HeadResult:
    """The epochs: shuffle, forward, CE in the input frame, step; then val IoU and (in a run folder) a checkpoint."""
    model, optimizer, history = state.model, state.optimizer, state.history
    frame = data.train.family.frame
    train_seconds, per_class, miou = 0.0, {}, float("nan")
    title = random_weights_suffix(data.train.fingerprint.random_weights)
    for epoch in range(state.start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)  # the epoch's order, resumable
        order = torch.randperm(len(data.train_ds), generator=gen).tolist()
        losses = []
        bar = tqdm(total=len(order), unit="img", desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress)
        for _, features, targets in iterate(data.train_ds, data.train_mem, order, cfg.batch_size, cfg.num_workers,
                                            device):
            features, targets = [f.float() for f in features], targets.long()
            if cfg.flip:
                flip = torch.rand(len(targets), generator=gen) < 0.5
                for f in features:
                    f[flip] = f[flip].flip(-1)
                targets[flip] = targets[flip].flip(-1)
            with autocast(device, cfg.precision):
                logits = to_frame(model(*features), frame)
                loss = F.cross_entropy(logits, targets, ignore_index=IGNORE)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
            bar.update(len(targets))
        bar.close()
        train_loss = float(torch.stack(losses).mean()) if losses else float("nan")
        train_seconds += time.perf_counter() - t0
        finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())  # the last step may break them
        if losses and not (math.isfinite(train_loss) and finite):  # diverged: never a NaN checkpoint
            _diverged(cfg, epoch, train_loss, checkpoints, finite)

        last = epoch == cfg.epochs
        outputs = None
        if checkpoints is not None and last:
            outputs = EvalOutputs(checkpoints.out / "predictions" if cfg.save_predictions else None, cfg.visualize,
                                  checkpoints.out / "visualizations", title)
        conf = evaluate(model, data.val_ds, data.val_mem, cfg.batch_size, cfg.num_workers, device, outputs, progress)
        per_class, miou = class_ious(conf, class_set)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_miou": miou,
                        **{f"iou_{k}": v for k, v in per_class.items()},
                        "epoch_seconds": time.perf_counter() - t0})
        if checkpoints is not None:
            checkpoints.save(cfg, class_set, data, state, epoch, miou)
            checkpoints.run.log(f"epoch {epoch}: train loss {train_loss:.4f}, val mIoU {miou:.4f}")
        if progress:
            tqdm.write(f"epoch {epoch}: train loss {train_loss:.4f}, val mIoU {miou:.4f}")
    if not per_class:  # resumed a finished run: report its last epoch
        per_class = {k[4:]: float(v) for k, v in history[-1].items() if k.startswith("iou_")}
        miou = float(history[-1]["val_miou"])
    return HeadResult(model, history, per_class, miou, train_seconds)
