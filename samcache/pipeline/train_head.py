"""Stage 2b (Phase 2): train the semantic head on cached embeddings. Never loads the encoder.

Read top to bottom: config -> run folder (new, or the run being resumed) -> data (cache split,
preloaded or via DataLoader) -> model and Adam, or the last good checkpoint (its train set unchanged)
-> epochs of (shuffle, forward, CE in the family's input frame, step) -> val mIoU -> the epoch in the TensorBoard
log (``head_log.py``) -> checkpoint (atomic; ``--keep`` prunes older ones, ``head_checkpoints.py``) -> summary,
the last epoch's per-image IoUs, training_curves.png. Every epoch records what it trained on;
the record sums every session's time (a resumed run's too). ``fit_head`` is the same loop for a notebook:
it returns the model, and writes files only with ``out=``.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm import tqdm

from samcache.cache.reader import Cache, CacheSplit, open_cache
from samcache.cache.schema import FINGERPRINT_ATTR
from samcache.data.labels import IGNORE, get_class_set
from samcache.errors import Interrupted, SamcacheError
from samcache.evaluation.heads import EvalOutputs, check_fingerprint, evaluate, summary_rows
from samcache.evaluation.metrics import IMAGE_COLUMNS, class_ious
from samcache.evaluation.training_data import iterate
from samcache.features.device import autocast, configure_matmul, describe_device, resolve_device
from samcache.features.frames import to_frame
from samcache.features.head import build_head
from samcache.messages import INTERRUPT_ADVICE, random_weights_suffix
from samcache.procs import pending_signal
from samcache.pipeline.config import new_run_dir, now_iso
from samcache.pipeline.configs import HeadConfig
from samcache.pipeline.head_checkpoints import (CheckpointWriter, best_epoch, check_train_set, checkpoint_path,
                                                last_good_checkpoint, saved_epochs, train_grew)
from samcache.pipeline.head_data import HeadData, load_data
from samcache.pipeline.head_log import CURVES, TrainingLog, open_log, save_curves, steps_done
from samcache.pipeline.head_sessions import Session, earlier_sessions, totals
from samcache.pipeline.provenance import COLUMNS as PROVENANCE_COLUMNS
from samcache.pipeline.provenance import TRAIN_COLUMNS, provenance, training, warn_subset, warn_train_is_val
from samcache.pipeline.provenance import with_columns
from samcache.pipeline.runs import PER_IMAGE, RunRecord, read_csv, read_record, write_csv
from samcache.pipeline.stage import run_stage

SUMMARY_COLUMNS = ["class", "iou", "epoch"] + PROVENANCE_COLUMNS + TRAIN_COLUMNS  # epoch: the one the IoUs are of


def _finished(run_dir: Path) -> bool:
    try:
        return read_record(run_dir).get("status") == "complete"
    except SamcacheError:
        return False


@dataclass
class HeadState:
    """The model being trained, its optimizer, and where training (re)starts."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    start_epoch: int = 1
    history: list = field(default_factory=list)  # one metrics row per epoch done
    session: Session | None = None  # this invocation, and the run's earlier ones (run folders only)
    log: TrainingLog | None = None  # the run's TensorBoard log (run folders only)


@dataclass
class HeadResult:
    """A trained head and its per-epoch metrics (train loss, val mIoU, per-class IoU, seconds)."""

    model: torch.nn.Module
    history: list[dict]
    per_class: dict[str, float]
    miou: float
    train_seconds: float
    per_image: list[dict] | None = None  # the last epoch's IoU rows per val image (run folders only)


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
    (``train_loss``, ``val_miou``, ``iou_<class>``, the train set's ``train_split`` and ``train_images``). A run
    folder (checkpoints, CSVs, config.yaml) is written only when ``out`` is given, as ``samcache train-head --out``
    writes it. ``train``/``val``: split names, or ``CacheSplit``s of this cache. The model remembers the weights
    whose features it learnt, so that ``evaluate_head`` refuses splits that other weights made.
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
        data = load_data(cfg, class_set, device)
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
    session = Session(now_iso(), time.perf_counter())
    if cfg.resume:
        out = Path(cfg.resume)
        ckpt, ckpt_path = last_good_checkpoint(out)
        if cfg.epochs < ckpt["epoch"]:
            raise SamcacheError(f"--epochs {cfg.epochs} is fewer than the {ckpt['epoch']} epochs already run in {out}")
        if cfg.epochs == ckpt["epoch"] and _finished(out):  # nothing to train: leave its results as they are
            raise SamcacheError(f"{out} has finished all {cfg.epochs} epochs; pass a larger --epochs to train on")
    else:
        out, ckpt = Path(cfg.out or new_run_dir("head")), None

    def same_training(train: CacheSplit, info: dict) -> None:  # a resume trains on what its epochs so far did
        check_fingerprint(ckpt["fingerprint"], train, ckpt_path)
        check_train_set(ckpt, info["image_ids"], train.name, bool(cfg.allow_train_growth), out)

    with run_stage("head", cfg, out, [cfg.cache], device=device, resume=bool(cfg.resume), config_now=False,
                   since=(session.started, session.t0)) as stage:
        run = stage.folder
        data = load_data(cfg, class_set, device, same_training if ckpt is not None else None)
        stage.save_config()  # after a resume's checks: a refused one changes nothing
        warn_subset(provenance(data.train, len(data.train_ds), False), "train-head")
        if cfg.train_split == cfg.val_split:
            warn_train_is_val(cfg.val_split, "train-head")
        state = _new_state(cfg, class_set, data, device)
        if ckpt is not None:  # the last good checkpoint of the run being resumed
            state.model.load_state_dict(ckpt["model"])
            state.optimizer.load_state_dict(ckpt["optimizer"])
            state.start_epoch = ckpt["epoch"] + 1
            state.history = [r for r in read_csv(out / "metrics.csv") if int(r["epoch"]) < state.start_epoch]
            session.earlier = earlier_sessions(out, state.history)
        session.first_epoch, session.load_seconds = state.start_epoch, time.perf_counter() - session.t0
        state.session = session
        state.log = open_log(out, steps_done(state.history, cfg.batch_size, len(data.train_ds)) + 1)
        try:
            result = _train(cfg, class_set, data, state, device, CheckpointWriter(out, run), progress)
        except Exception:  # Ctrl-C may surface first as a DataLoader worker's death (the signal hit it too)
            if pending_signal() is None:
                raise
            interrupted(out, run, 130 if pending_signal() != signal.SIGTERM else 143)
        except KeyboardInterrupt as exc:
            interrupted(out, run, getattr(exc, "exit_code", 130))
        finally:
            if state.log is not None:
                state.log.close()
        if result.per_image is not None:
            write_csv(out / PER_IMAGE, result.per_image, IMAGE_COLUMNS)
        save_curves(out / CURVES, result.history, {n: class_set.color(i) for i, n in enumerate(class_set.class_names)},
                    f"head training: class set {cfg.classes}, train {cfg.train_split}, val {cfg.val_split}"
                    + random_weights_suffix(data.train.fingerprint.random_weights))
        record = _record(cfg, data, state, result, device)
        record.fields["checkpoints"] = [checkpoint_path(out, e).name for e in saved_epochs(out)]
        write_csv(out / "summary.csv", with_columns(record.summary, {**record.provenance, "epoch": cfg.epochs},
                                                   SUMMARY_COLUMNS[2:]), SUMMARY_COLUMNS)
        return stage.finish(record, commit=False), result  # committed by its first checkpoint


def interrupted(out: Path, run, exit_code: int) -> None:
    """Raise the advice that is true after Ctrl-C or SIGTERM: what is on disk, not what was computed (the
    interrupt may have cut the last checkpoint's write)."""
    saved = saved_epochs(out)
    done = saved[-1] if saved else 0
    kept = "epoch 1 is" if done == 1 else f"epochs 1-{done} are"
    advice = (INTERRUPT_ADVICE["train-head-kept"].format(kept=kept, out=out) if run.committed and done
              else INTERRUPT_ADVICE["train-head-none"])
    raise Interrupted(advice, exit_code) from None


def _record(cfg: HeadConfig, data: HeadData, state: HeadState, result: HeadResult, device) -> RunRecord:
    """run.json of a finished run: the IoUs are the last epoch's; the best epoch, the train set (every epoch's,
    and whether it is the val split) and the time of every session are named beside them."""
    fp, history = data.train.fingerprint, result.history
    prov = {**provenance(data.val_ds.split, len(data.val_ds), fp.random_weights),
            **training(data.train.name, len(data.train_ds), data.train_info["split_images"],
                       cfg.train_split == cfg.val_split, train_grew(history), data.train.dataset.domain)}
    best = best_epoch(history)
    sessions = state.session.all(cfg.epochs)
    trained = sum(int(r.get("train_images") or len(data.train_ds)) for r in history)
    started = sessions[0].get("started") or state.session.started  # an estimated first session may not know
    return RunRecord.from_json({
            "stage": "head", "status": "complete", "started": started, **totals(sessions), "sessions": sessions,
            "epochs": cfg.epochs, "epoch": cfg.epochs,
            "best_epoch": best[0] if best else None, "best_miou": best[1] if best else None, "keep": cfg.keep,
            "epochs_run": cfg.epochs - state.start_epoch + 1, "train_split": data.train.name,
            "train_images": len(data.train_ds), "train_images_over_epochs": trained, "val_images": len(data.val_ds),
            "preload": data.preload, "classes": cfg.classes, "cache": cfg.cache, "device": describe_device(device),
            "fingerprint": fp.describe(), "random_weights": fp.random_weights, "encoder_passes": None,
            "miou": result.miou, "summary": summary_rows(result.per_class, result.miou), "config": None,
            "provenance": prov, "out": None})  # None: filled in by the skeleton, in this place


def _diverged(cfg: HeadConfig, epoch: int, train_loss: float, checkpoints: "CheckpointWriter | None",
              weights_finite: bool = True) -> None:
    """Stop a diverged run: earlier epochs stay on disk, the record says "diverged" (report refuses it)."""
    kept = ""
    run, out = (checkpoints.run, checkpoints.out) if checkpoints is not None else (None, None)
    if run is not None and run.committed:
        kept = f"; epochs 1-{epoch - 1} are kept in {out}" if epoch > 2 else f"; epoch 1 is kept in {out}"
        run.record({"stage": "head", "status": "diverged", "epochs_done": epoch - 1, "config": cfg.dump()})
    what = f"train loss {train_loss:.4g}" + ("" if weights_finite else ", weights not finite")
    raise SamcacheError(f"training diverged in epoch {epoch}: {what} (--lr {cfg.lr:g}); lower --lr{kept}")


def _train(cfg: HeadConfig, class_set, data: HeadData, state: HeadState, device, checkpoints: CheckpointWriter | None,
           progress: bool) -> HeadResult:
    """The epochs: shuffle, forward, CE in the input frame, step; then val IoU and (in a run folder) a checkpoint."""
    model, optimizer, history = state.model, state.optimizer, state.history
    frame = data.train.family.frame
    train_seconds, per_class, miou, outputs = 0.0, {}, float("nan"), None
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
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        if state.session is not None:
            state.session.train_seconds += seconds
        finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())  # the last step may break them
        if losses and not (math.isfinite(train_loss) and finite):  # diverged: never a NaN checkpoint
            _diverged(cfg, epoch, train_loss, checkpoints, finite)

        last = epoch == cfg.epochs
        outputs = None
        if checkpoints is not None and last:
            outputs = EvalOutputs(checkpoints.out / "predictions" if cfg.save_predictions else None, cfg.visualize,
                                  checkpoints.out / "visualizations", title, per_image=[])
        conf = evaluate(model, data.val_ds, data.val_mem, cfg.batch_size, cfg.num_workers, device, outputs, progress)
        per_class, miou = class_ious(conf, data.val_ds.class_set)  # the set's classes the val split labels
        history.append({"epoch": epoch, "train_loss": train_loss, "val_miou": miou,
                        **{f"iou_{k}": v for k, v in per_class.items()},
                        "epoch_seconds": time.perf_counter() - t0, **data.epoch_columns()})
        if state.log is not None:  # before the checkpoint: a resume purges what lies past its own
            state.log.epoch(torch.stack(losses).tolist() if losses else [], optimizer.param_groups[0]["lr"],
                            history[-1])
        if checkpoints is not None:
            checkpoints.save(cfg, class_set, data, state, epoch, miou)
            checkpoints.run.log(f"epoch {epoch}: train loss {train_loss:.4f}, val mIoU {miou:.4f}")
        if progress:
            tqdm.write(f"epoch {epoch}: train loss {train_loss:.4f}, val mIoU {miou:.4f}")
    if not per_class:  # resumed a finished run: report its last epoch
        per_class = {k[4:]: float(v) for k, v in history[-1].items() if k.startswith("iou_")}
        miou = float(history[-1]["val_miou"])
    return HeadResult(model, history, per_class, miou, train_seconds, outputs.per_image if outputs else None)
