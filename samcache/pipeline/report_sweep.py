"""A sweep in reports: the sweep stage's label, its table (per class: the run's setting and the best one) and
its heat map (setting -> mIoU, the runs' own settings boxed, the best starred). Registered with the stage
registry, so that report.py names no stage. With random weights the label and the chart say that the best
setting means nothing. Torch-free; matplotlib is imported when a chart is drawn."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from samcache import fileio
from samcache.pipeline.runs import read_csv
from samcache.pipeline.stage_registry import Chart, Stage, register_stage

SETTING_COLUMNS = ["phrase_set", "rule", "score_threshold", "min_instance_area", "semantic_threshold",
                   "fused_presence", "fused_instances", "fused_semantic", "fused_threshold"]
MEANINGLESS = "RANDOM weights: the best setting means nothing"
_SHORT = {"fused_presence": "presence", "fused_instances": "inst", "fused_semantic": "sem", "fused_threshold": "floor"}


def _is_yes(value) -> bool:
    return str(value).lower() in ("true", "yes", "1")


def _row_key(row: dict) -> str:
    """The heat map's row: the prompt set, the rule and its settings but its threshold (the column)."""
    parts = [str(row["rule"])]
    if row["rule"] == "instances":
        parts.append(f"area>={row['min_instance_area']}")
    if row["rule"] == "fused":
        parts += [("" if _is_yes(row[k]) else "no ") + _SHORT[k] for k in ("fused_presence", "fused_instances",
                                                                            "fused_semantic")]
        if float(row.get("fused_threshold") or 0):
            parts.append(f"floor {row['fused_threshold']}")
    return f"{row['phrase_set']}: " + " ".join(parts)


def _column_key(row: dict) -> str:
    return f"t={float(row['semantic_threshold'] if row['rule'] == 'semantic-head' else row['score_threshold']):g}"


def setting_label(row: dict) -> str:
    return f"{_row_key(row)}, {_column_key(row)}"


def draw_heatmap(rows: list[dict], path: Path, random: bool, title: str = "") -> None:
    """One sweep's grid as a heat map of mIoU: rows = rule and settings, columns = the rule's threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    row_keys = list(dict.fromkeys(_row_key(r) for r in rows))
    col_keys = sorted(dict.fromkeys(_column_key(r) for r in rows), key=lambda k: float(k[2:]))
    grid = [[math.nan] * len(col_keys) for _ in row_keys]
    marks = []
    for r in rows:
        i, j = row_keys.index(_row_key(r)), col_keys.index(_column_key(r))
        grid[i][j] = float(r["miou"]) if str(r["miou"]) not in ("", "nan") else math.nan
        marks += [(i, j, m) for m in ("used", "best") if r.get(m)]
    fig, ax = plt.subplots(figsize=(2.0 + 1.1 * len(col_keys), 1.4 + 0.45 * len(row_keys)))
    image = ax.imshow(grid, cmap="viridis", aspect="auto", vmin=0)
    best = {(i, j) for i, j, mark in marks if mark == "best"}
    top = max((v for line in grid for v in line if not math.isnan(v)), default=0.0)
    for i, line in enumerate(grid):
        for j, value in enumerate(line):
            if not math.isnan(value):  # dark text on the bright end of viridis, white on the dark end
                ax.text(j, i, f"{value:.3f}" + (" ★" if (i, j) in best else ""), ha="center", va="center",
                        color="black" if top and value > 0.6 * top else "white", fontsize=8,
                        fontweight="bold" if (i, j) in best else "normal")
    for i, j, mark in marks:
        if mark == "used":
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2.5))
    ax.set_xticks(range(len(col_keys)), col_keys, fontsize=8)
    ax.set_yticks(range(len(row_keys)), row_keys, fontsize=8)
    fig.colorbar(image, ax=ax, label="mIoU")
    head = "\n".join(textwrap.wrap(title, 60)) if title else "sweep: mIoU per setting"
    ax.set_title(head + "\n(red box: the run's setting, ★: best)" + (f"\n{MEANINGLESS}" if random else ""),
                 fontsize=8)
    fig.tight_layout()
    fileio.write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)


def _label(record: dict) -> str:
    text = f"sweep of {record['settings']} settings, best {record['best']}"
    return text + (f" ({MEANINGLESS})" if record.get("random_weights") else "")


def _chart(runs: list[tuple[str, Path]], path: Path, flag: str) -> None:
    """The report's heat map: the first sweep given (a report of several sweeps shows the others' tables)."""
    label, folder = runs[0]
    draw_heatmap(read_csv(Path(folder) / "sweep.csv"), path, bool(flag), title=label.split(f" ({MEANINGLESS}")[0])


register_stage(Stage("sweep", _label, {"iou_used": "sweep: the run's setting", "iou_best": "sweep: the best setting"},
                     table="Sweep of stored text-prompt outputs (per class)",
                     chart=Chart("report_sweep.png", "sweep heat map", _chart),
                     seed_images=lambda r: int(r["images"]) * int(r["settings"])))
