"""`samcache report`: Phase 1 (each prompt strategy) against Phase 2, accuracy and cost.

All IoUs in the table are dataset-level (intersections and unions summed over images, as
cityscapesScripts does), read from each run's summary.csv. The cost table compares each
stage's wall time with what the seed workflow would have spent re-running the encoder,
using the per-image encoder time measured during extraction.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from samcache.cache.reader import open_cache  # noqa: E402
from samcache.errors import SamcacheError  # noqa: E402
from samcache.pipeline.runs import RUN_RECORD, format_table, read_csv, read_record, write_csv  # noqa: E402

SERIES_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def _column(record: dict) -> str:
    if record["stage"] == "head":
        return f"head ({record['epochs']} ep)"
    return f"zero-shot {record['strategy']}/{record['multimask']}" + (" ORACLE" if record["oracle"] else "")


def _summary_iou(run_dir: Path, stage: str) -> dict[str, float]:
    key = "iou" if stage == "head" else "iou_dataset"
    return {r["class"]: float(r[key]) if r[key] else math.nan for r in read_csv(run_dir / "summary.csv")}


def _encoder_seconds_per_image(cache: str) -> tuple[float | None, list[dict]]:
    """Mean measured encoder s/img over the cache's extraction runs, and one cost row per split."""
    rows, total_s, total_n = [], 0.0, 0
    try:
        cache_obj = open_cache(cache)
    except SamcacheError:
        return None, rows
    for name in cache_obj.splits:
        split = cache_obj.split(name)
        runs = split.attrs.get("runs", [])
        images = sum(r["images"] for r in runs)
        for r in runs:
            if r.get("encoder_seconds_per_image"):
                total_s += r["encoder_seconds_per_image"] * r["images"]
                total_n += r["images"]
        rows.append({"stage": f"extract {name}", "encoder_passes": images,
                     "wall_s": f"{sum(r['seconds'] for r in runs):.1f}", "seed_reencode_s": "",
                     "cache_mib": f"{split.nbytes_stored() / 2**20:.1f}",
                     "device": ", ".join(sorted({r["device"] for r in runs}))})
    return (total_s / total_n if total_n else None), rows


def build_report(run_dirs: list[str | Path], out: str | Path) -> dict:
    """Write report.md, report.csv and report_iou.png to ``out``; return tables and paths."""
    dirs = [Path(d) for d in run_dirs]
    for d in dirs:
        if not (d / RUN_RECORD).is_file():
            raise SamcacheError(f"{d} is not a samcache run folder (no {RUN_RECORD})")
    records = [read_record(d) for d in dirs]
    records = [r for r in records if r["stage"] in ("zero-shot", "head")]
    if not records:
        raise SamcacheError("no zero-shot or head runs among the given folders")
    columns = [_column(r) for r in records]
    ious = [_summary_iou(d, r["stage"]) for d, r in zip(dirs, records)]
    classes = [c for c in ious[0] if c != "mean"]
    for extra in ious[1:]:
        classes += [c for c in extra if c != "mean" and c not in classes]
    iou_rows = [{"class": c, **{col: iou.get(c, math.nan) for col, iou in zip(columns, ious)}}
                for c in classes + ["mean"]]

    t_enc, cost_rows = _encoder_seconds_per_image(records[0]["cache"])
    for r, col in zip(records, columns):
        images = r["images"] if r["stage"] == "zero-shot" else r["epochs"] * (r["train_images"] + r["val_images"])
        cost_rows.append({"stage": col, "encoder_passes": r["encoder_passes"], "wall_s": f"{r['seconds']:.1f}",
                          "seed_reencode_s": f"{images * t_enc:.1f}" if t_enc else "", "cache_mib": "",
                          "device": r["device"]})
    random_weights = any(r["random_weights"] for r in records)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "report.csv", iou_rows, ["class", *columns])
    bars = _chart(iou_rows[:-1], columns, out / "report_iou.png", random_weights)
    iou_text = format_table(iou_rows, ["class", *columns])
    cost_cols = ["stage", "encoder_passes", "wall_s", "seed_reencode_s", "cache_mib", "device"]
    cost_text = format_table(cost_rows, cost_cols)
    note = ("\n**RANDOM weights**: these numbers come from a randomly initialised model. They show the pipeline "
            "working end to end, not SAM's accuracy.\n" if random_weights else "")
    enc = f"{t_enc:.3f} s/image" if t_enc else "unknown"
    (out / "report.md").write_text(
        "# samcache report: Phase 1 (zero-shot prompts) vs Phase 2 (semantic head)\n" + note +
        "\n## Per-class IoU (dataset-level, void ignored)\n\n```\n" + iou_text + "\n```\n\n"
        "![per-class IoU](report_iou.png)\n\n## Cost\n\nMeasured encoder time: " + enc + ". "
        "`seed_reencode_s` is what the seed workflow would spend re-running the encoder for that stage "
        "(zero-shot: once per image; head: every train and val image, every epoch).\n\n```\n" + cost_text +
        "\n```\n\nRuns:\n" + "".join(f"- `{d}`\n" for d in dirs))
    return {"iou_table": iou_text, "cost_table": cost_text, "iou_rows": iou_rows, "cost_rows": cost_rows,
            "bars": bars, "random_weights": random_weights, "out": str(out),
            "files": [str(out / n) for n in ("report.md", "report.csv", "report_iou.png")]}


def _chart(rows: list[dict], columns: list[str], path: Path, random_weights: bool) -> int:
    """Grouped bars, one group per class, one bar per run; returns the number of bars drawn."""
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows) * max(1, len(columns) / 2)), 4))
    width = 0.8 / len(columns)
    bars = 0
    for k, col in enumerate(columns):
        values = [r[col] if math.isfinite(r[col]) else 0.0 for r in rows]
        drawn = ax.bar([i + (k - (len(columns) - 1) / 2) * width for i in range(len(rows))], values, width,
                       label=col, color=SERIES_COLORS[k % len(SERIES_COLORS)])
        bars += len(drawn)
    ax.set_xticks(range(len(rows)), [r["class"] for r in rows])
    ax.set_ylabel("IoU (dataset-level)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("Phase 1 vs Phase 2" + ("  [RANDOM weights: pipeline demo, not SAM accuracy]" if random_weights else ""),
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return bars
