"""The report's domain-shift table: does a head's advantage over zero-shot prompting survive another dataset?

Rows are methods (a zero-shot strategy, clicks, a head by the dataset it was trained on, at its epoch), columns
the datasets the runs were scored on; a cell is the mIoU over the classes that every run of the table scores (the
classes each dataset labels, and a head's training dataset too), so that no column gains or loses a class the
others lack. Zero-shot runs and heads give their semantic IoU (one label map per image); a stage without one
gives its first mIoU (clicks: per-object mIoU after 1 click), and its row says so. Shown when the runs span more
than one dataset; runs of different class sets get separate tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from samcache.data.datasets import DEFAULT_DATASET  # what runs recorded before datasets were data scored
from samcache.pipeline.report_cost import model_of
from samcache.pipeline.stage_registry import stage_of

CHART = "report_domain_shift.png"


@dataclass
class ShiftTable:
    class_set: str
    columns: list[str]  # evaluation datasets
    rows: list[dict]  # {"method": ..., column: mIoU}
    shared: list[str]  # the classes every cell averages
    runs: dict[tuple[str, str], str] = field(default_factory=dict)  # (method, column) -> the run's report label


def _metric(stage: str, metrics: dict) -> str | None:
    """The run's number for the table: semantic IoU, else the stage's first declared mIoU."""
    declared = list(stage_of(stage).metrics.values())
    choices = ["semantic_iou"] + [m for m in declared if m.startswith("miou")]
    return next((m for m in choices if m in metrics), None)


def _method(record: dict, prov: dict, metric: str, several_models: bool) -> str:
    if prov.get("train_dataset") or prov.get("train_split"):  # a head, by the dataset it learnt from
        name = f"head trained on {prov.get('train_dataset') or DEFAULT_DATASET}, epoch {record.get('epoch')}"
    else:
        name = stage_of(record["stage"]).label(record)
    if metric != "semantic_iou":
        name += f" ({metric.replace('miou@', 'mIoU@')} per object)"
    return f"{model_of(record)} {name}" if several_models else name


def _classes(values: dict) -> set[str]:
    return {c for c in values if c not in ("mean", "all")}  # the runs' own averages are not classes


def domain_shift(records: list, metrics: list[dict], labels: list[str], provs: list[dict]) -> list[ShiftTable]:
    """One table per class set, or none when every run was scored on one dataset and trained on it."""
    domains = {p.get("dataset") or DEFAULT_DATASET for p in provs}
    trained = {p.get("train_dataset") for p in provs if p.get("train_dataset")}
    if len(domains | trained) < 2:
        return []
    several_models = len({model_of(r) for r in records}) > 1
    tables = []
    for cs in dict.fromkeys(r["classes"] for r in records):
        cells: dict[tuple[str, str], tuple[float, dict, str]] = {}
        for k, record in enumerate(records):
            metric = _metric(record["stage"], metrics[k]) if record["classes"] == cs else None
            if metric is None:
                continue
            method = _method(record, provs[k], metric, several_models)
            column = provs[k].get("dataset") or DEFAULT_DATASET
            while (method, column) in cells:  # the same method scored twice on one dataset: both shown
                method += f" ({labels[k]})"
            cells[(method, column)] = (k, metrics[k][metric], labels[k])
        if not cells:
            continue
        common = set.intersection(*(_classes(v) for _, v, _ in cells.values()))
        shared = [c for v in (v for _, v, _ in cells.values()) for c in v if c in common]
        shared = list(dict.fromkeys(shared))  # in the class set's order
        seen = list(dict.fromkeys(c for _, c in cells))  # training datasets first, then as the runs come
        columns = [c for c in seen if c in trained] + [c for c in seen if c not in trained]
        methods = list(dict.fromkeys(m for m, _ in cells))
        rows = []
        for method in methods:
            row = {"method": method}
            for column in columns:
                if (method, column) in cells:
                    values = [cells[(method, column)][1].get(c, math.nan) for c in shared]
                    finite = [v for v in values if math.isfinite(v)]
                    row[column] = sum(finite) / len(finite) if finite else math.nan
                else:
                    row[column] = math.nan
            rows.append(row)
        tables.append(ShiftTable(cs, columns, rows, shared, {key: lab for key, (_, _, lab) in cells.items()}))
    return tables


def tidy_rows(tables: list[ShiftTable]) -> list[dict]:
    """report.csv's rows: one per cell, under the run it comes from (metric ``domain_shift_miou``)."""
    return [{"run": table.runs[(row["method"], column)], "class_set": table.class_set,
             "class": f"mean of {len(table.shared)} shared classes", "metric": "domain_shift_miou",
             "value": row[column]}
            for table in tables for row in table.rows for column in table.columns
            if (row["method"], column) in table.runs]


def chart(tables: list[ShiftTable], path: Path, flag: str) -> None:
    """Grouped bars: one group per evaluation dataset, one bar per method; one panel per class set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from samcache import fileio
    from samcache.evaluation.visualize import series_colors, wrap_title

    fig, axes = plt.subplots(len(tables), 1, squeeze=False, figsize=(10, 4 * len(tables)))
    for ax, table in zip(axes[:, 0], tables):
        colors = series_colors(len(table.rows))
        width = 0.8 / max(len(table.rows), 1)
        for k, row in enumerate(table.rows):
            values = [row[c] if math.isfinite(row[c]) else 0.0 for c in table.columns]
            ax.bar([i + (k - (len(table.rows) - 1) / 2) * width for i in range(len(table.columns))], values, width,
                   label=row["method"], color=colors[k])
        ax.set_xticks(range(len(table.columns)), table.columns, fontsize=9)
        ax.set_xlabel("evaluated on")
        ax.set_ylabel(f"mIoU over {len(table.shared)} shared classes")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        ax.set_title(wrap_title(f"Domain shift, class set {table.class_set}" + (f"  {flag}" if flag else ""), 7),
                     fontsize=9)
    fig.tight_layout()
    fileio.write_with(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight"))
    plt.close(fig)


def shift_text(tables: list[ShiftTable]) -> str:
    """report.md's section: each table with the classes its cells average."""
    from samcache.pipeline.runs import format_table

    parts = []
    for table in tables:
        parts.append(f"Class set {table.class_set}: mIoU over the {len(table.shared)} classes every run below scores "
                     f"({', '.join(table.shared)}); rows are methods, columns the datasets they were scored on, heads "
                     f"named by the dataset they were trained on.\n\n```\n"
                     + format_table(table.rows, ["method", *table.columns]) + "\n```\n")
    return "\n## Domain shift\n\n" + "\n".join(parts)
