"""What a head run leaves for people to watch: a TensorBoard event log (``<run>/tensorboard/``) and
``training_curves.png``.

The log is written by tensorboardX, which writes TensorBoard's event files with protobuf alone: viewing them
needs TensorBoard (``pip install tensorboard``), writing them does not. (``torch.utils.tensorboard`` cannot
write without the tensorboard package and its server's dependencies.)

Every tag is logged against the optimizer step (1-based, summed over epochs): ``train/loss`` and ``train/lr``
per step; ``val/miou``, ``val/iou/<class>``, ``train/epoch_loss`` and ``epoch`` at each epoch's last step. An
epoch is logged before its checkpoint is saved. ``--resume`` continues in the same folder with a new event
file that starts with TensorBoard's restart marker at its first step (``purge_step``): TensorBoard drops what
a killed session logged past the checkpoint the run resumes from, so the log reads as one run.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

from samcache.errors import SamcacheWarning

TB_DIR = "tensorboard"
CURVES = "training_curves.png"


def steps_done(history: list[dict], batch_size: int, train_images: int) -> int:
    """Optimizer steps of the epochs in ``history`` (metrics.csv rows; each records its train images)."""
    return sum(math.ceil(int(r.get("train_images") or train_images) / batch_size) for r in history)


class TrainingLog:
    """The run's TensorBoard writer for one session, from optimizer step ``first_step`` on."""

    def __init__(self, run_dir: Path, first_step: int):
        from tensorboardX import SummaryWriter

        self.step = first_step - 1
        # the suffix sorts sessions in step order within one second (TensorBoard reads files in name order)
        self.writer = SummaryWriter(str(Path(run_dir) / TB_DIR), purge_step=first_step if first_step > 1 else None,
                                    flush_secs=10, filename_suffix=f".step{first_step:09d}")

    def epoch(self, losses: list[float], lr: float, row: dict) -> None:
        """One epoch: its steps' losses, then its metrics.csv ``row`` at its last step; flushed to disk."""
        for loss in losses:
            self.step += 1
            self.writer.add_scalar("train/loss", loss, self.step)
            self.writer.add_scalar("train/lr", lr, self.step)
        scalars = {"epoch": row["epoch"], "train/epoch_loss": row["train_loss"], "val/miou": row["val_miou"],
                   **{f"val/iou/{k[4:]}": v for k, v in row.items() if k.startswith("iou_")}}
        for tag, value in scalars.items():
            if value is not None and math.isfinite(float(value)):  # a class absent from val has no IoU
                self.writer.add_scalar(tag, float(value), self.step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_log(run_dir: Path, first_step: int) -> TrainingLog | None:
    """The session's log, or None with one warning when it cannot be written (the run trains on without it)."""
    try:
        return TrainingLog(run_dir, first_step)
    except Exception as exc:  # a side product: never the run's results
        warnings.warn(f"no TensorBoard log in {Path(run_dir) / TB_DIR}: {type(exc).__name__}: {exc}", SamcacheWarning)
        return None


def curves_figure(rows: list[dict], colors: dict[str, tuple], title: str):
    """Train loss and val IoUs (mIoU and every class, in its Cityscapes colour) per epoch; the best epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from samcache.evaluation.visualize import wrap_title

    def values(key):
        return [float(r[key]) if r.get(key) not in (None, "") else math.nan for r in rows]

    epochs = [int(r["epoch"]) for r in rows]
    fig, (loss_ax, iou_ax) = plt.subplots(1, 2, figsize=(11, 3.6))
    loss_ax.plot(epochs, values("train_loss"), marker="o", markersize=3, color="black")
    loss_ax.set_ylabel("train loss (cross-entropy)")
    for name in [k[4:] for k in rows[0] if k.startswith("iou_")] if rows else []:
        rgb = tuple(c / 255 for c in colors.get(name, (128, 128, 128)))
        iou_ax.plot(epochs, values(f"iou_{name}"), color=rgb, linewidth=1.2, label=name)
    miou = values("val_miou")
    iou_ax.plot(epochs, miou, color="black", linewidth=2.4, marker="o", markersize=3, label="mIoU")
    finite = [(m, e) for m, e in zip(miou, epochs) if math.isfinite(m)]
    if finite:
        best, at = max(finite, key=lambda p: (p[0], -p[1]))
        iou_ax.axvline(at, color="gray", linestyle=":", linewidth=1)
        iou_ax.annotate(f"best {best:.3f} (epoch {at})", (at, best), xytext=(-4, 6), textcoords="offset points",
                        fontsize=8, ha="right")
    iou_ax.set_ylabel("val IoU")
    iou_ax.set_ylim(0, 1)
    iou_ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    for ax in (loss_ax, iou_ax):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.suptitle(wrap_title(title, 11), fontsize=9)
    fig.tight_layout()
    return fig


def save_curves(path: Path, rows: list[dict], colors: dict[str, tuple], title: str) -> bool:
    """``training_curves.png`` from metrics.csv's rows; a picture that cannot be drawn is one warning."""
    from samcache import fileio

    fig = None
    try:
        fig = curves_figure(rows, colors, title)
        fileio.write_with(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight"))
        return True
    except Exception as exc:
        warnings.warn(f"picture {path} skipped: {type(exc).__name__}: {exc}", SamcacheWarning)
        return False
    finally:
        if fig is not None:
            import matplotlib.pyplot as plt

            plt.close(fig)
