"""A head run's checkpoints: ``head_epoch_N.pt`` per epoch, which of them ``--keep`` keeps, the best epoch,
the one ``--resume`` continues from, and the one ``evaluate --head RUN_DIR`` takes.

The best epoch is the first with the highest val mIoU in metrics.csv (an epoch without one never wins).
``--keep best`` keeps it and the last epoch: --resume continues from the last one (its weights and Adam state).
Each checkpoint also records the images it was trained on, so that a resume can tell that the train set changed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from samcache import fileio
from samcache.errors import SamcacheError, SamcacheWarning, setting
from samcache.pipeline.config import absolute_path
from samcache.pipeline.runs import read_csv, read_record, write_csv


def checkpoint_path(run_dir: str | Path, epoch: int) -> Path:
    return Path(run_dir) / f"head_epoch_{epoch}.pt"


def saved_epochs(run_dir: str | Path) -> list[int]:
    """Epochs with a head_epoch_N.pt in ``run_dir``, in order."""
    stems = (p.stem.rsplit("_", 1)[1] for p in Path(run_dir).glob("head_epoch_*.pt"))
    return sorted(int(s) for s in stems if s.isdigit())


def last_good_checkpoint(run_dir: Path) -> tuple[dict, Path]:
    """The newest checkpoint that loads; damaged ones (a kill during an old, non-atomic save) are skipped."""
    for epoch in reversed(saved_epochs(run_dir)):
        path = checkpoint_path(run_dir, epoch)
        try:
            return torch.load(path, map_location="cpu", weights_only=True), path
        except Exception as exc:
            warnings.warn(f"{path} is damaged ({type(exc).__name__}); skipping it", SamcacheWarning)
    raise SamcacheError(f"nothing to resume in {run_dir} (no readable head_epoch_N.pt); start it again with "
                        f"--out {run_dir} --overwrite")


def _miou(row: dict) -> float:
    try:
        value = float(row.get("val_miou") or "nan")
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def best_epoch(rows: list[dict]) -> tuple[int, float] | None:
    """(epoch, val mIoU) of the first epoch with the highest val mIoU; None when no epoch has one."""
    scored = [(int(r["epoch"]), _miou(r)) for r in rows if not math.isnan(_miou(r))]
    if not scored:
        return None
    top = max(m for _, m in scored)
    return next((e, m) for e, m in scored if m == top)


def kept_epochs(keep: str, rows: list[dict], last: int) -> set[int]:
    """The epochs whose checkpoints ``keep`` keeps once epoch ``last`` is saved (None: every one)."""
    if keep == "all":
        return {int(r["epoch"]) for r in rows} | {last}
    best = best_epoch(rows) if keep == "best" else None
    return {last} | ({best[0]} if best else set())


def prune(run_dir: Path, keep: set[int], last: int, owned: set[str]) -> None:
    """Delete the checkpoints of epochs before ``last`` that ``keep`` leaves out; only files the run wrote
    (``owned``: its outputs), after ``last``'s own checkpoint is safely on disk."""
    for epoch in saved_epochs(run_dir):
        path = checkpoint_path(run_dir, epoch)
        if epoch < last and epoch not in keep and path.name in owned:
            path.unlink(missing_ok=True)


def train_grew(rows: list[dict]) -> bool:
    """Whether the epochs of a run trained on different numbers of images (a resume after the split grew)."""
    return len({str(r["train_images"]) for r in rows if r.get("train_images") not in (None, "")}) > 1


def check_train_set(ckpt: dict, ids: list[str], split: str, allow_growth: bool, run_dir: Path) -> None:
    """A resume trains on the images its checkpoint was trained on; a grown set only with --allow-train-growth."""
    before = (ckpt.get("train") or {}).get("image_ids")
    if before is None or set(before) == set(ids):  # older checkpoints do not list them
        return
    epoch, now = ckpt["epoch"], len(ids)
    if not set(before) <= set(ids):
        gone = len(set(before) - set(ids))
        raise SamcacheError(f"--resume {run_dir}: the train set changed since epoch {epoch} ({gone} of its "
                            f"{len(before)} images of split {split} are no longer in it); start a new run instead")
    if not allow_growth:
        raise SamcacheError(f"--resume {run_dir}: the train set grew from {len(before)} to {now} images of split "
                            f"{split} since epoch {epoch}; pass --allow-train-growth to train the remaining epochs "
                            f"on all {now} (metrics.csv records each epoch's), or start a new run")
    warnings.warn(f"train-head --resume: from epoch {epoch + 1} on, the head trains on {now} images of split {split} "
                  f"(epochs 1-{epoch} on {len(before)}; --allow-train-growth); metrics.csv records each epoch's",
                  SamcacheWarning)


@dataclass
class CheckpointWriter:
    """Where a run folder keeps each epoch: metrics.csv, then head_epoch_N.pt (atomic), then --keep's pruning
    of older ones, then the record."""

    out: Path
    run: object

    def save(self, cfg, class_set, data, state, epoch: int, miou: float) -> None:
        """``cfg``, ``data``, ``state``: train_head's HeadConfig, HeadData and HeadState (not imported: this
        module is train_head's and the config's helper, and helpers import neither back)."""
        ckpt = {"model": state.model.state_dict(), "optimizer": state.optimizer.state_dict(), "epoch": epoch,
                "config": cfg.dump(), "head": cfg.head, "features": list(data.train_ds.feature_names),
                "class_set": cfg.classes, "class_names": list(class_set.class_names),
                "fingerprint": data.train.fingerprint.to_attrs(), "val_miou": miou, "cache": absolute_path(cfg.cache),
                "train": {**data.train_info, "grew": train_grew(state.history)}}
        columns = list(dict.fromkeys(k for row in state.history for k in row))  # older runs' rows lack some
        write_csv(self.out / "metrics.csv", state.history, columns)  # before the checkpoint: a resume rewrites it
        fileio.write_with(checkpoint_path(self.out, epoch), lambda tmp: torch.save(ckpt, tmp))
        self.run.commit()
        prune(self.out, kept_epochs(cfg.keep, state.history, epoch), epoch, set(self.run.outputs()))
        self.run.record({"stage": "head", "status": "running", "epochs_done": epoch, "config": cfg.dump(),
                         "sessions": state.session.all(epoch)})


def describe_epochs(record: dict) -> str:
    """'IoUs of epoch 5, the last; best epoch 3 (val mIoU 0.5123); kept head_epoch_3.pt, head_epoch_5.pt (--keep
    best)' for a finished train-head record."""
    text = f"IoUs of epoch {record['epoch']}, the last"
    if record.get("best_epoch") is not None:
        text += f"; best epoch {record['best_epoch']} (val mIoU {record['best_miou']:.4f})"
    kept = record.get("checkpoints") or []
    shown = ", ".join(kept) if len(kept) <= 3 else f"{len(kept)} checkpoints ({kept[0]} ... {kept[-1]})"
    return text + f"; kept {shown or 'no checkpoint'} (--keep {record.get('keep', 'all')})"


@dataclass
class HeadChoice:
    """The checkpoint ``evaluate --head`` reads, and (for a run folder) which epoch and why."""

    path: Path
    chosen: str | None = None  # "best" or "last" when --head was a run folder
    note: str = ""


def choose_checkpoint(head: str | Path, epoch: str | None, option: str = "head") -> HeadChoice:
    """``head``: a checkpoint file, or a head run folder whose best (default) or last kept epoch is taken.
    ``option``: the setting that named it (messages name it)."""
    name = setting(option)
    head = Path(head)
    if not head.is_dir():
        if epoch is not None:
            raise SamcacheError(f"--epoch {epoch} picks a checkpoint of a run folder; {name} {head} is a file "
                                f"(give {name} its run folder, or leave out --epoch)")
        return HeadChoice(head)
    stage = read_record(head)["stage"] if (head / "run.json").is_file() else None
    if stage != "head":
        held = f"it holds a samcache {stage} run" if stage else "no run.json"
        raise SamcacheError(f"{name} {head} is a folder but not a head run ({held}); give a train-head run folder "
                            f"or a head_epoch_N.pt file")
    saved = saved_epochs(head)
    if not saved:
        raise SamcacheError(f"{name} {head}: the head run has no checkpoint (head_epoch_N.pt) yet")
    last = saved[-1]
    if epoch == "last":
        return HeadChoice(checkpoint_path(head, last), "last", f"epoch {last} of {head}: its last")
    rows = read_csv(head / "metrics.csv") if (head / "metrics.csv").is_file() else []
    best = best_epoch([r for r in rows if str(r.get("epoch", "")).isdigit() and int(r["epoch"]) <= last])
    if best is None:
        return HeadChoice(checkpoint_path(head, last), "last", f"epoch {last} of {head}: its last (metrics.csv "
                                                                   f"holds no val mIoU to choose the best by)")
    if best[0] in saved:
        return HeadChoice(checkpoint_path(head, best[0]), "best",
                          f"epoch {best[0]} of {head}: its best by val mIoU ({best[1]:.4f})")
    return HeadChoice(checkpoint_path(head, last), "last", f"epoch {last} of {head}: its last (its best, epoch "
                                                               f"{best[0]} with val mIoU {best[1]:.4f}, was not kept)")
