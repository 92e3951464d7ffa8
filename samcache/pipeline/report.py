"""`samcache report`: Phase 1 (each prompt strategy) against Phase 2, accuracy and cost.

All IoUs in the table are dataset-level (intersections and unions summed over images, as
cityscapesScripts does), read from each run's summary.csv. Every run gets its own column
(two runs with the same label are told apart by their folders); runs of different class sets
get separate tables and chart panels, never a shared mean. The cost table compares each
stage's wall time with what the seed workflow would have spent re-running the encoder,
using the per-image encoder time measured during extraction.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from samcache import fileio  # noqa: E402
from samcache.cache.reader import open_cache  # noqa: E402
from samcache.errors import SamcacheError  # noqa: E402
from samcache.messages import RANDOM_WEIGHTS_NOTE, RANDOM_WEIGHTS_TITLE  # noqa: E402
from samcache.pipeline.config import now_iso, save_config  # noqa: E402
from samcache.pipeline.configs import ReportConfig  # noqa: E402
from samcache.pipeline.runs import format_table, read_csv, read_record, run_folder, write_csv, write_record  # noqa: E402

SERIES_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
STAGES = ("zero-shot", "head", "evaluate")
IOU_KEY = {"zero-shot": "iou_dataset", "head": "iou", "evaluate": "iou"}


def _label(record: dict) -> str:
    if record["stage"] == "head":
        return f"head ({record['epochs']} ep)"
    if record["stage"] == "evaluate":
        return f"evaluate epoch {record['epoch']} on {record['split']}"
    return f"zero-shot {record['strategy']}/{record['multimask']}" + (" ORACLE" if record.get("oracle") else "")


def _unique_labels(dirs: list[Path], records: list[dict]) -> list[str]:
    """The run's label, plus its folder where two runs would otherwise share a column name."""
    labels = [_label(r) for r in records]
    for attempt in (lambda d: d.name, lambda d: str(d)):
        clash = {x for x in labels if labels.count(x) > 1}
        labels = [f"{x} ({attempt(d)})" if x in clash else x for x, d in zip(labels, dirs)]
    if len(set(labels)) < len(labels):
        raise SamcacheError("the same run folder is given twice")
    return labels


def _load(run_dir: Path) -> tuple[dict, dict[str, float]]:
    record = read_record(run_dir)
    stage = record["stage"]
    if stage not in STAGES:
        raise SamcacheError(f"{run_dir} holds a {stage} run; report compares {', '.join(STAGES)} runs")
    if record.get("status", "complete") != "complete":
        hint = f"finish it with `samcache train-head --resume {run_dir}`" if stage == "head" else "re-run it"
        raise SamcacheError(f"{run_dir} is an unfinished {stage} run ({record.get('status')}); {hint}, "
                            f"or leave it out")
    key = IOU_KEY[stage]
    try:
        ious = {r["class"]: float(r[key]) if r[key] else math.nan for r in read_csv(run_dir / "summary.csv")}
        record["classes"] = record.get("classes") or record["config"].get("classes", "seed5")
    except (KeyError, ValueError, TypeError) as exc:
        raise SamcacheError(f"{run_dir}: summary.csv or run.json is incomplete ({type(exc).__name__}: {exc})") from None
    return record, ious


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
        for r in runs:
            if r.get("encoder_seconds_per_image"):
                total_s += r["encoder_seconds_per_image"] * r["images"]
                total_n += r["images"]
        rows.append({"stage": f"extract {name}", "encoder_passes": sum(r["images"] for r in runs),
                     "wall_s": f"{sum(r['seconds'] for r in runs):.1f}", "seed_reencode_s": "",
                     "cache_mib": f"{split.nbytes_stored() / 2**20:.1f}",
                     "device": ", ".join(sorted({r["device"] for r in runs}))})
    return (total_s / total_n if total_n else None), rows


def _cost_rows(records: list[dict], labels: list[str]) -> tuple[list[dict], dict[str, float | None]]:
    caches = list(dict.fromkeys(r["cache"] for r in records))
    rows, t_enc = [], {}
    for cache in caches:
        t_enc[cache], split_rows = _encoder_seconds_per_image(cache)
        rows += [{**row, "stage": f"{row['stage']}" + (f" ({cache})" if len(caches) > 1 else "")} for row in split_rows]
    for r, label in zip(records, labels):
        t = t_enc.get(r["cache"])
        images = r["epochs"] * (r["train_images"] + r["val_images"]) if r["stage"] == "head" else r.get("images", 0)
        rows.append({"stage": label, "encoder_passes": r.get("encoder_passes", ""), "wall_s": f"{r['seconds']:.1f}",
                     "seed_reencode_s": f"{images * t:.1f}" if t and images else "", "cache_mib": "",
                     "device": r.get("device", "")})
    return rows, t_enc


def build_report(run_dirs: list[str | Path], out: str | Path, overwrite: bool = False) -> dict:
    """Write report.md, report.csv and report_iou.png to ``out``; return tables and paths."""
    dirs = [Path(d) for d in run_dirs]
    loaded = [_load(d) for d in dirs]
    records, ious = [r for r, _ in loaded], [i for _, i in loaded]
    labels = _unique_labels(dirs, records)
    class_sets = list(dict.fromkeys(r["classes"] for r in records))
    tables, iou_rows = [], []
    for cs in class_sets:
        members = [k for k, r in enumerate(records) if r["classes"] == cs]
        classes = list(dict.fromkeys(c for k in members for c in ious[k] if c != "mean"))
        rows = [{"class_set": cs, "class": c, **{labels[k]: ious[k].get(c, math.nan) for k in members}}
                for c in classes + ["mean"]]
        tables.append((cs, [labels[k] for k in members], rows))
        iou_rows += rows
    cost_rows, t_enc = _cost_rows(records, labels)
    random_weights = any(r.get("random_weights") for r in records)

    cfg = ReportConfig(runs=[str(d) for d in dirs], out=str(out), overwrite=overwrite)
    out = Path(out)
    with run_folder(out, "report", overwrite, now_iso()) as folder:
        save_config(cfg, out / "config.yaml")
        write_csv(out / "report.csv", iou_rows, ["class_set", "class", *labels])
        bars = _chart(tables, labels, out / "report_iou.png", random_weights)
        iou_text = "\n\n".join(f"class set {cs}\n" + format_table(rows, ["class", *cols]) for cs, cols, rows in tables)
        cost_cols = ["stage", "encoder_passes", "wall_s", "seed_reencode_s", "cache_mib", "device"]
        cost_text = format_table(cost_rows, cost_cols)
        note = f"\n**{RANDOM_WEIGHTS_NOTE}**\n" if random_weights else ""
        enc = ", ".join(f"{t:.3f} s/image" for t in t_enc.values() if t) or "unknown"
        fileio.write_text(out / "report.md",
            "# samcache report: Phase 1 (zero-shot prompts) vs Phase 2 (semantic head)\n" + note +
            "\n## Per-class IoU (dataset-level, void ignored)\n\n```\n" + iou_text + "\n```\n\n"
            "![per-class IoU](report_iou.png)\n\n## Cost\n\nMeasured encoder time: " + enc + ". "
            "`seed_reencode_s` is what the seed workflow would spend re-running the encoder for that stage "
            "(zero-shot and evaluate: once per image; head: every train and val image, every epoch).\n\n```\n"
            + cost_text + "\n```\n\nRuns:\n" + "".join(f"- `{d}`: {lab}\n" for d, lab in zip(dirs, labels)))
        write_record(out, {"stage": "report", "status": "complete", "runs": [str(d) for d in dirs],
                           "labels": labels, "random_weights": random_weights, "config": cfg.dump()})
        folder.commit()
    return {"iou_table": iou_text, "cost_table": cost_text, "iou_rows": iou_rows, "cost_rows": cost_rows,
            "labels": labels, "bars": bars, "random_weights": random_weights, "out": str(out),
            "files": [str(out / n) for n in ("report.md", "report.csv", "report_iou.png")]}


def _chart(tables: list, labels: list[str], path: Path, random_weights: bool) -> int:
    """Grouped bars, one panel per class set, one group per class, one bar per run; returns bars drawn."""
    width_classes = max(len(rows) - 1 for _, _, rows in tables)
    fig, axes = plt.subplots(len(tables), 1, squeeze=False,
                             figsize=(max(6, 1.3 * width_classes * max(1, len(labels) / 2)), 4 * len(tables)))
    bars = 0
    for ax, (cs, cols, rows) in zip(axes[:, 0], tables):
        rows = rows[:-1]  # no bar for the mean
        width = 0.8 / len(cols)
        for k, col in enumerate(cols):
            values = [r[col] if math.isfinite(r[col]) else 0.0 for r in rows]
            drawn = ax.bar([i + (k - (len(cols) - 1) / 2) * width for i in range(len(rows))], values, width,
                           label=col, color=SERIES_COLORS[labels.index(col) % len(SERIES_COLORS)])
            bars += len(drawn)
        ax.set_xticks(range(len(rows)), [r["class"] for r in rows], rotation=30 if len(rows) > 8 else 0, fontsize=8)
        ax.set_ylabel("IoU (dataset-level)")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8, loc="upper right")
        ax.set_title(f"Phase 1 vs Phase 2, class set {cs}" + (f"  {RANDOM_WEIGHTS_TITLE}" if random_weights else ""),
                     fontsize=9)
    fig.tight_layout()
    fileio.write_with(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return bars
