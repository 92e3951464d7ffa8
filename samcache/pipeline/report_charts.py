"""The report's figures: semantic IoU bars of every run, and the clicks stage's mIoU-after-k-clicks curves."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from samcache import fileio  # noqa: E402
from samcache.evaluation.click_metrics import miou_curve  # noqa: E402
from samcache.evaluation.visualize import series_colors, wrap_title  # noqa: E402
from samcache.pipeline.runs import read_csv, read_record  # noqa: E402


def bar_chart(tables: list, labels: list[str], path: Path, flag: str) -> int:
    """Semantic IoU: one panel per class set, one group per class, one bar per run; returns bars drawn.
    Every run has its own colour (any number of runs); the legend sits outside the axes."""
    panels = tables or [("", "none", [], [{"class": "mean"}])]
    colors = series_colors(len(labels))
    width_classes = max(len(rows) - 1 for *_, rows in panels) or 1
    fig_width = min(16.0, max(6.0, 0.35 * width_classes * max(len(cols) for _, _, cols, _ in panels) + 2))
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, figsize=(fig_width + 3.5, 4 * len(panels)))
    bars = 0
    for ax, (_, cs, cols, rows) in zip(axes[:, 0], panels):
        rows = rows[:-1]  # no bar for the mean
        width = 0.8 / max(len(cols), 1)
        for k, col in enumerate(cols):
            values = [r[col] if math.isfinite(r[col]) else 0.0 for r in rows]
            drawn = ax.bar([i + (k - (len(cols) - 1) / 2) * width for i in range(len(rows))], values, width,
                           label=col, color=colors[labels.index(col)])
            bars += len(drawn)
        ax.set_xticks(range(len(rows)), [r["class"] for r in rows], rotation=30 if len(rows) > 8 else 0, fontsize=8)
        ax.set_ylabel("semantic IoU (dataset-level)")
        ax.set_ylim(0, 1)
        if cols:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        ax.set_title(wrap_title(f"Phase 1 vs Phase 2, class set {cs}" + (f"  {flag}" if flag else ""), fig_width),
                     fontsize=9)
    fig.tight_layout()
    fileio.write_with(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight"))
    plt.close(fig)
    return bars


def click_chart(runs: list[tuple[str, Path]], path: Path, flag: str) -> None:
    """mIoU after k clicks (all objects) of every clicks run; the legend outside the axes."""
    fig, ax = plt.subplots(figsize=(10, 4))
    colors = series_colors(len(runs))
    for k, (label, run_dir) in enumerate(runs):
        rows = read_csv(run_dir / "per_object.csv")
        record = read_record(run_dir)
        curve = miou_curve([{"class": "all", "ious": json.loads(r["ious"])} for r in rows], ["all"],
                           record["max_clicks"]).get("all", [])
        ax.plot(range(1, len(curve) + 1), curve, marker="o", markersize=3, label=label, color=colors[k])
    ax.set_xlabel("clicks")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("mIoU (all objects)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_title(wrap_title("Interactive clicks" + (f"  {flag}" if flag else ""), 7), fontsize=9)
    fig.tight_layout()
    fileio.write_with(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight"))
    plt.close(fig)


def training_curves(runs: list[tuple[Path, dict, str, str]], flag: str) -> list[tuple]:
    """(label, PNG bytes or None, note) of each (run folder, record, label, its curves file) given: the run's own
    picture, else drawn here from its metrics.csv."""
    import io

    from samcache.data.labels import get_class_set
    from samcache.pipeline.head_log import TB_DIR, curves_figure

    shown = []
    for run_dir, record, label, name in runs:
        run_dir = Path(run_dir)
        logged = f"; TensorBoard log: {run_dir / TB_DIR}" if (run_dir / TB_DIR).is_dir() else ""
        if (run_dir / name).is_file():
            shown.append((label, (run_dir / name).read_bytes(), f"{run_dir / name}{logged}"))
        elif (run_dir / "metrics.csv").is_file():
            cs = get_class_set(record["classes"])
            try:
                fig = curves_figure(read_csv(run_dir / "metrics.csv"), {n: cs.color(i) for i, n in
                                                                       enumerate(cs.class_names)}, f"{label}  {flag}")
                buffer = io.BytesIO()
                fig.savefig(buffer, dpi=100, format="png", bbox_inches="tight")
                plt.close(fig)
            except Exception as exc:  # a picture: the report stands without it
                plt.close("all")
                shown.append((label, None, f"no curves: {run_dir / 'metrics.csv'} cannot be drawn ({exc})"))
                continue
            shown.append((label, buffer.getvalue(), f"drawn by the report from {run_dir / 'metrics.csv'}{logged}"))
        else:
            shown.append((label, None, f"{run_dir} has no metrics.csv"))
    return shown
