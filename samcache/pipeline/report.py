"""`samcache report`: Phase 1 against Phase 2, on the same footing, with the cost of each.

- **Semantic IoU** (zero-shot composed label maps, head, evaluate): one label map per image,
  false positives counted, dataset-level over the whole split, as cityscapesScripts computes it.
- **Prompted-class IoU** (zero-shot only): each class scored only on images that contain it, by
  the union of its own masks: no false positives from absent classes. Labelled as such.
- **Interactive clicks**: mIoU after 1 and 5 clicks and NoC@85/90, per object.
Every run gets its own column (two runs with the same label are told apart by their folders);
runs of different class sets get separate tables and chart panels, never a shared mean. The cost
table compares each stage's wall time with what re-running the encoder would have cost.
"""

from __future__ import annotations

import math
from pathlib import Path

from samcache import fileio
from samcache.data.labels import get_class_set
from samcache.errors import SamcacheError
from samcache.messages import RANDOM_WEIGHTS_NOTE, RANDOM_WEIGHTS_NOTE_SOME, RANDOM_WEIGHTS_TITLE, RANDOM_WEIGHTS_TITLE_SOME
from samcache.pipeline.config import now_iso, save_config
from samcache.pipeline.configs import ReportConfig
from samcache.pipeline.report_charts import bar_chart, training_curves
from samcache.pipeline.report_gallery import build_gallery
from samcache.pipeline.report_html import Page, render
from samcache.pipeline.report_cost import COLUMNS as COST_COLUMNS
from samcache.pipeline.report_cost import cost_rows, model_of
from samcache.pipeline.report_domains import CHART as SHIFT_CHART
from samcache.pipeline.report_domains import chart as shift_chart
from samcache.pipeline.report_domains import domain_shift, shift_text, tidy_rows as shift_rows
from samcache.pipeline.provenance import COLUMNS as PROVENANCE_COLUMNS
from samcache.pipeline.provenance import TRAIN_COLUMNS, TRAIN_IS_VAL, TRAIN_IS_VAL_NOTE, describe
from samcache.pipeline.provenance import train_subset
from samcache.pipeline.run_folder import run_folder, settle
from samcache.pipeline.runs import RunRecord, format_table, read_csv, write_csv
from samcache.pipeline.stage_registry import COMPARED, stage_of, stages
from samcache.pipeline import report_sweep  # noqa: F401  (registers the sweep stage: label, table, heat map)


def _label(record: dict) -> str:
    """The run's column name, from its stage's declared label (a label that fails on a record is one line)."""
    try:
        return stage_of(record["stage"]).label(record)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise SamcacheError(f"the {record['stage']} stage's report label fails on the run in {record.get('out')} "
                            f"({type(exc).__name__}: {exc}); its run.json lacks what the label reads") from None


def provenance_of(record: dict) -> dict:
    """The run's split, model, images scored of the split's, RANDOM and ORACLE, and a head's train set
    (older records: rebuilt from what they hold)."""
    config = record.get("config") or {}
    images = record.get("images", record.get("val_images"))
    prov = dict(record.get("provenance") or {
        "split": record.get("split") or config.get("val_split") or config.get("split"), "model": model_of(record),
        "images": images, "split_images": images, "random_weights": bool(record.get("random_weights")),
        "oracle": bool(record.get("oracle"))})
    fill = stage_of(record["stage"]).provenance
    return fill(record, prov) if fill is not None else prov


def _train_marks(label: str, prov: dict) -> str:
    """A head trained on a subset, on a train set that grew, or scored on its own train split says so."""
    if not prov.get("train_split"):
        return label
    if train_subset(prov):
        label += f" (train {prov['train_images']}/{prov['train_split_images']} img)"
    if prov.get("train_grew"):
        label += " (train grew)"
    if prov.get("train_dataset") and prov.get("train_dataset") != prov.get("dataset"):
        label += f" (trained on {prov['train_dataset']})"
    return label + (f" {TRAIN_IS_VAL}" if prov.get("train_is_val") else "")


def _unique_labels(dirs: list[Path], records: list[dict]) -> list[str]:
    """The run's label, plus its folder where two runs would otherwise share a column name. The split and
    model are named where runs differ in them, RANDOM where some runs have random weights and others not,
    a subset where a run scored fewer images than its split holds, and for heads a train subset, a train set
    that grew, and TRAIN=VAL."""
    base = [_label(r) for r in records]
    provs = [provenance_of(r) for r in records]
    models = [model_of(r) for r in records]
    if len(set(models)) > 1:  # SAM beside SAM 2.1 (or two SAM sizes): every column names its model
        base = [f"{m} {x}" for m, x in zip(models, base)]
    if len({p.get("dataset") for p in provs}) > 1:  # runs of several datasets: each names its own
        base = [f"{x} of {p.get('dataset')}" if stage_of(r["stage"]).label_names_split else f"{x} on {p.get('dataset')}"
                for x, p, r in zip(base, provs, records)]
    if len({p["split"] for p in provs}) > 1:  # a train-split run beside val runs
        base = [f"{x} on {p['split']}" if not stage_of(r["stage"]).label_names_split else x for x, p, r in zip(base, provs, records)]
    base = [f"{x} ({p['images']}/{p['split_images']} img)" if (p.get("images") or 0) < (p.get("split_images") or 0)
            else x for x, p in zip(base, provs)]
    base = [_train_marks(x, p) for x, p in zip(base, provs)]
    if len({bool(p["random_weights"]) for p in provs}) > 1:
        base = [f"{x} RANDOM" if p["random_weights"] else x for x, p in zip(base, provs)]
    labels = [f"{x} ({d.name})" if base.count(x) > 1 else x for x, d in zip(base, dirs)]
    labels = [f"{x} ({d})" if labels.count(lab) > 1 else lab for x, d, lab in zip(base, dirs, labels)]
    if len(set(labels)) < len(labels):
        raise SamcacheError("the same run folder is given twice")
    return labels


def _load(run_dir: Path) -> tuple[RunRecord, dict[str, dict[str, float]]]:
    """(record, {metric: {class: value}}) of one finished run."""
    settle(run_dir)  # a command killed there: the earlier run it was replacing comes back first
    record = RunRecord.read(run_dir)
    stage = record.stage
    if stage not in stages():
        raise SamcacheError(f"{run_dir} holds a {stage} run; report compares {', '.join(stages())} runs")
    declared = stage_of(stage).metrics
    if record.get("status", "complete") != "complete":
        resume = stage_of(stage).resume
        hint = f"finish it with `samcache {resume} --resume {run_dir}`" if resume else "re-run it"
        if record.get("status") == "diverged":
            hint = "its training diverged: re-run it with a lower --lr (--overwrite)"
        raise SamcacheError(f"{run_dir} is an unfinished {stage} run ({record.get('status')}); {hint}, "
                            f"or leave it out")
    try:
        summary = read_csv(run_dir / "summary.csv")
        metrics = {metric: {r["class"]: float(r[column]) if r[column] else math.nan for r in summary}
                   for column, metric in declared.items() if summary and column in summary[0]}
        if not metrics:  # an empty or foreign summary.csv: say so rather than show a run without numbers
            raise SamcacheError(f"{run_dir}/summary.csv holds no {stage} results (expected columns class, "
                                f"{', '.join(declared)})")
        record.classes = record.classes or record["config"].get("classes", "seed5")
        record.seconds = float(record["seconds"])
        record.cache = str(record["cache"])
    except (KeyError, ValueError, TypeError) as exc:
        raise SamcacheError(f"{run_dir}: summary.csv or run.json is incomplete ({type(exc).__name__}: {exc})") from None
    return record, metrics


def _tables(records, metrics, labels) -> tuple[list[dict], list[tuple]]:
    """Tidy rows for report.csv, and (title, class set, columns, rows) tables for the text."""
    tidy, tables = [], []
    for cs in dict.fromkeys(r["classes"] for r in records):
        members = [k for k, r in enumerate(records) if r["classes"] == cs]
        for metric in COMPARED:
            runs = [k for k in members if metric in metrics[k]]
            if not runs:
                continue
            classes = list(dict.fromkeys(c for k in runs for c in metrics[k][metric] if c != "mean"))
            rows = [{"class": c, **{labels[k]: metrics[k][metric].get(c, math.nan) for k in runs}}
                    for c in classes + ["mean"]]
            tables.append((COMPARED[metric], cs, [labels[k] for k in runs], rows))
            tidy += [{"run": labels[k], "class_set": cs, "class": row["class"], "metric": metric,
                      "value": row[labels[k]]} for row in rows for k in runs]
        for k in members:  # a stage's metrics that are not compared: the run's own table
            stage = stage_of(records[k]["stage"])
            own = stage.own_metrics()
            present = [m for m in own if m in metrics[k]]
            if not present:
                continue
            rows = [{"class": c, **{m: metrics[k].get(m, {}).get(c, math.nan) for m in own}}
                    for c in metrics[k][present[0]]]
            tables.append((f"{stage.table}: {labels[k]}", cs, own, rows))
            tidy += [{"run": labels[k], "class_set": cs, "class": row["class"], "metric": m, "value": row[m]}
                     for row in rows for m in own]
    return tidy, tables


def build_report(run_dirs: list[str | Path], out: str | Path, overwrite: bool = False, gallery: int = 50) -> dict:
    """Write report.md, report.csv, report_iou.png (+ report_clicks.png) and report.html (with a gallery of up to
    ``gallery`` images) to ``out``; return tables and paths."""
    dirs = [Path(d) for d in run_dirs]
    loaded = [_load(d) for d in dirs]
    records, metrics = [r for r, _ in loaded], [m for _, m in loaded]
    labels = _unique_labels(dirs, records)
    tidy, tables = _tables(records, metrics, labels)
    costs, t_enc = cost_rows(records, labels)
    provs = [provenance_of(r) for r in records]
    shift = domain_shift(records, metrics, labels, provs)  # none unless the runs span several datasets
    tidy += shift_rows(shift)
    random_weights = any(p["random_weights"] for p in provs)
    mixed = random_weights and not all(p["random_weights"] for p in provs)
    train_is_val = any(p.get("train_is_val") for p in provs)
    by_label = {lab: p for lab, p in zip(labels, provs)}
    tidy = [{**row, **{k: by_label[row["run"]].get(k) for k in PROVENANCE_COLUMNS + TRAIN_COLUMNS}} for row in tidy]
    cfg = ReportConfig(runs=[str(d) for d in dirs], out=str(out), overwrite=overwrite, gallery=gallery)
    out = Path(out)
    with run_folder(out, "report", overwrite, now_iso(), reads=dirs) as folder:
        save_config(cfg, out / "config.yaml")
        write_csv(out / "report.csv", tidy, ["run", "class_set", "class", "metric", "value", *PROVENANCE_COLUMNS,
                                             *TRAIN_COLUMNS])
        semantic = [t for t in tables if t[0] == COMPARED["semantic_iou"]]
        title_flag = (RANDOM_WEIGHTS_TITLE_SOME if mixed else RANDOM_WEIGHTS_TITLE) if random_weights else ""
        bars = bar_chart(semantic, labels, out / "report_iou.png", title_flag)
        files = ["report.md", "report.csv", "report_iou.png"]
        figures, charts = "", [("Semantic IoU per class of every run (dataset-level)", out / "report_iou.png")]
        for stage in stages().values():  # a stage's own chart of its runs (clicks: mIoU after k clicks)
            runs = [(labels[k], d) for k, d in enumerate(dirs) if records[k]["stage"] == stage.name]
            if stage.chart is not None and runs:
                stage.chart.draw(runs, out / stage.chart.file, title_flag)
                files.append(stage.chart.file)
                figures += f"\n![{stage.chart.alt}]({stage.chart.file})\n"
                charts.append((f"{stage.chart.alt} ({stage.chart.file})", out / stage.chart.file))
        if shift:
            shift_chart(shift, out / SHIFT_CHART, title_flag)
            files.append(SHIFT_CHART)
            figures += shift_text(shift) + f"\n![domain shift]({SHIFT_CHART})\n"
            charts.append(("Domain shift", out / SHIFT_CHART))
        models = {model_of(r) for r in records}  # several: every column names its model (_unique_labels)
        of_model = f", model {models.pop()}" if len(models) == 1 else ""
        iou_text = "\n\n".join(f"{title}, class set {cs}{of_model}\n" + format_table(_shown(rows), ["class", *cols])
                                 for title, cs, cols, rows in tables)
        cost_text = format_table(costs, COST_COLUMNS)
        note = f"\n**{RANDOM_WEIGHTS_NOTE_SOME if mixed else RANDOM_WEIGHTS_NOTE}**\n" if random_weights else ""
        note += f"\n**{TRAIN_IS_VAL_NOTE}**\n" if train_is_val else ""
        enc = ", ".join(f"{t:.3f} s/image" for t in t_enc.values() if t) or "unknown"
        fileio.write_text(out / "report.md",
            "# samcache report: Phase 1 (zero-shot prompts, clicks) vs Phase 2 (semantic head)\n" + note +
            "\n## Accuracy\n\n```\n" + iou_text + "\n```\n\n![semantic IoU](report_iou.png)\n"
            + figures + "\n## Cost\n\nMeasured encoder time: "
            + enc + ". `seed_reencode_s` is what the seed workflow would spend re-running the encoder for that "
            "stage (zero-shot, clicks and evaluate: once per image; head: every train and val image, every "
            "epoch).\n\n```\n" + cost_text + "\n```\n\nRuns:\n" + "".join(f"- `{d}`: {lab} ({describe(p, lab)})\n"
                                                                       for d, lab, p in zip(dirs, labels, provs)))
        notes = [RANDOM_WEIGHTS_NOTE_SOME if mixed else RANDOM_WEIGHTS_NOTE] if random_weights else []
        shown, why = build_gallery(dirs, records, labels, provs, gallery)
        page = Page(scope(records, provs), notes + ([TRAIN_IS_VAL_NOTE] if train_is_val else []), tables,
                    {t[0] for t in tables if t[0] in COMPARED.values()}, charts,
                    training_curves([(d, r, lab, stage_of(r["stage"]).curves) for d, r, lab in
                                     zip(dirs, records, labels) if stage_of(r["stage"]).curves], title_flag),
                    costs, COST_COLUMNS,
                    f"Measured encoder time: {enc}. seed_reencode_s: what re-running the encoder per stage would "
                    f"have cost.", [(lab, str(d), describe(p, lab)) for d, lab, p in zip(dirs, labels, provs)],
                    now_iso(), shown, why)
        fileio.write_text(out / "report.html", render(page))
        files.append("report.html")
        folder.record({"stage": "report", "status": "complete", "runs": [str(d) for d in dirs],
                       "labels": labels, "random_weights": random_weights, "config": cfg.dump()})
        folder.commit()
    return {"iou_table": iou_text, "cost_table": cost_text, "tidy": tidy, "cost_rows": costs, "labels": labels,
            "bars": bars, "random_weights": random_weights, "random_mixed": mixed,
            "train_is_val": train_is_val, "domain_shift": shift, "gallery": _gallery_line(shown, why),
            "runs_text": "\n".join(f"{lab}: {describe(p, lab)}" for lab, p in zip(labels, provs)), "out": str(out), "files": [str(out / n) for n in files]}


def _gallery_line(shown, why: str) -> str:
    """The terminal's line on report.html's gallery: how many images, and which runs' label maps it recomputed."""
    if shown is None:
        return why
    replayed = [run.label for run in shown.runs if run.source.startswith(("recomputed", "saved predictions; "))]
    return (f"report.html gallery: {len(shown.items)} of the {shown.images_scored} images scored on {shown.split}"
            + (f"; label maps of {', '.join(replayed)} recomputed from the cache (no encoder pass)" if replayed else ""))


def scope(records: list[dict], provs: list[dict]) -> list[str]:
    """What the report scores, in words: per split and class set, the images, the classes averaged and the model."""
    lines = []
    for split, classes in dict.fromkeys((p["split"], r["classes"]) for r, p in zip(records, provs)):
        mine = [(r, p) for r, p in zip(records, provs) if (p["split"], r["classes"]) == (split, classes)]
        images = max(int(p.get("split_images") or 0) for _, p in mine)
        models = ", ".join(dict.fromkeys(model_of(r) for r, _ in mine))
        names = ", ".join(get_class_set(classes).eval_names)
        lines.append(f"Scored: split {split} ({images} images), class set {classes} ({names}; mIoU is their mean), "
                     f"model {models}, {len(mine)} run{'s' if len(mine) > 1 else ''}")
    return lines


def _shown(rows: list[dict]) -> list[dict]:
    """NoC (a mean number of clicks) with 2 decimals; IoUs keep format_table's 4."""
    return [{k: f"{v:.2f}" if k.startswith("noc@") and isinstance(v, float) and math.isfinite(v) else v
             for k, v in row.items()} for row in rows]
