"""`samcache sweep`: every composition setting scored from stored decoder outputs, without the model.

A text pass with ``--keep-scores`` stores per image what every compose rule reads
(``evaluation.stored_scores``). The sweep composes those outputs with each setting of the grid (the product
of the values given per setting, per rule, per run: one run per prompt set) through the very function a
full ``zero-shot`` run composes with (``concept_decoding.compose_image``), and scores each with the same
dataset-level confusion matrix: each cell is what a full run with that setting gives. Writes sweep.csv
(setting -> mIoU and per-class IoU; the runs' own settings and the best marked), summary.csv (per class:
the first run's setting and the best one, for the report) and sweep_heatmap.png.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from samcache.cache.reader import open_cache
from samcache.data.labels import IGNORE, get_class_set
from samcache.errors import SamcacheError
from samcache.evaluation.concept_decoding import Composition, compose_image
from samcache.evaluation.concepts import InstanceComposition, SemanticComposition, phrase_map
from samcache.evaluation.fused import FusedComposition
from samcache.evaluation.metrics import class_ious, confusion_matrix_torch
from samcache.evaluation.stored_scores import SCORES_DIR, load_image
from samcache.features.families import backend_for
from samcache.pipeline.config import new_run_dir
from samcache.pipeline.configs.sweeping import YES_NO
from samcache.pipeline.report_sweep import SETTING_COLUMNS, draw_heatmap, setting_label
from samcache.pipeline.runs import RunRecord, format_table, read_record, write_csv
from samcache.pipeline.stage import run_stage
from samcache.pipeline.zero_shot_text import composition_record
from samcache.procs import check_interrupt


@dataclass(frozen=True)
class Setting:
    run: int  # which of the sweep's runs (prompt sets)
    phrase_set: str
    how: Composition

    def row(self) -> dict:
        return {"phrase_set": self.phrase_set, **composition_record(self.how)}


def _text_pass(run: str) -> dict:
    record = read_record(run)
    if record.get("stage") != "zero-shot" or record.get("strategy") != "text" or not record.get("stored_scores"):
        raise SamcacheError(f"{run} is not a text pass with stored scores: run `samcache zero-shot --prompt text "
                            f"--keep-scores` first")
    return record


def _grid(cfg, records: list[dict]) -> list[Setting]:
    """Every setting to score; one line for a threshold the stored scores cannot answer."""
    own = records[0]["config"]
    pick = lambda name, cast: [cast(v) for v in (getattr(cfg, name) or [str(own[name])])]  # noqa: E731
    yes = lambda v: YES_NO[str(v).lower()]  # noqa: E731
    thresholds, areas = pick("score_threshold", float), pick("min_instance_area", int)
    semantic, fused_floor = pick("semantic_threshold", float), pick("fused_threshold", float)
    terms = [pick(n, yes) for n in ("fused_presence", "fused_instances", "fused_semantic")]
    settings = []
    for k, record in enumerate(records):
        phrase_set = record.get("phrase_set", "class_names")
        for compose in cfg.compose or [own["compose"]]:
            if compose != "semantic-head":
                floor = record["stored_scores"]["from"]
                low = [t for t in thresholds if t < floor]
                if low:
                    raise SamcacheError(f"--score-threshold {low[0]} is below {floor}, the presence x score from "
                                        f"which {record['out']} stored instances: re-run that text pass with "
                                        f"--keep-scores-from {low[0]}")
            if compose == "instances":
                hows = [Composition(compose, instance=InstanceComposition(t, a)) for t, a in
                        itertools.product(thresholds, areas)]
            elif compose == "semantic-head":
                hows = [Composition(compose, semantic=SemanticComposition(t)) for t in semantic]
            else:
                hows = [Composition(compose, fused=FusedComposition(t, p, i, s, f)) for t, p, i, s, f in
                        itertools.product(thresholds, *terms, fused_floor) if i or s]
            settings += [Setting(k, phrase_set, how) for how in hows]
    if not settings:
        raise SamcacheError("no setting to score (a fused rule needs its instance or semantic term)")
    return settings


def _same_images(runs: list[str], records: list[dict]) -> list[str]:
    """The images every run stored, in order; one line when the runs are not passes over the same images."""
    ids = [sorted(p.stem for p in (Path(run) / SCORES_DIR).glob("*.npz")) for run in runs]
    for run, record, mine in zip(runs, records, ids):
        if len(mine) != record["images"]:
            raise SamcacheError(f"{run}/{SCORES_DIR} holds {len(mine)} images of the run's {record['images']}")
        for key in ("cache", "split", "classes"):
            if record[key] != records[0][key]:
                raise SamcacheError(f"{run} and {runs[0]} differ in {key} ({record[key]} vs {records[0][key]}): "
                                    f"a sweep compares passes over the same images")
        if mine != ids[0]:
            raise SamcacheError(f"{run} and {runs[0]} stored different images: a sweep compares passes over the "
                                f"same images")
    return ids[0]


def run_sweep(cfg, progress: bool = True) -> dict:
    """Score every setting of the grid from the runs' stored outputs; write the sweep folder; return its record."""
    records = [_text_pass(run) for run in cfg.runs]
    settings = _grid(cfg, records)
    image_ids = _same_images(cfg.runs, records)
    class_set = get_class_set(records[0]["classes"])
    prompts = [phrase_map(class_set, base=yaml.safe_load((Path(run) / "phrases.yaml").read_text())).prompts()
               for run in cfg.runs]
    split = open_cache(records[0]["cache"]).split(records[0]["split"])
    backend = backend_for(split.fingerprint.model_type)
    out = Path(cfg.out) if cfg.out else new_run_dir("sweep")
    n = class_set.num_classes
    with run_stage("sweep", cfg, out, [*cfg.runs, records[0]["cache"]]) as run:
        confusion = torch.zeros((len(settings), n, n + 1), dtype=torch.int64)
        for image_id in tqdm(image_ids, unit="img", desc="sweep", disable=not progress):
            check_interrupt()
            gt = torch.from_numpy(class_set.to_index(split.label_ids(image_id)))
            size = tuple(int(v) for v in split.original_size(image_id))
            stored = [load_image(Path(r) / SCORES_DIR / f"{image_id}.npz") for r in cfg.runs]
            for k, (mine, pairs) in enumerate(zip(stored, prompts)):
                if mine.phrases != [p for _, p in pairs]:
                    raise SamcacheError(f"{cfg.runs[k]}: the stored phrases of {image_id} are not the run's "
                                        f"phrases.yaml")
            for s, setting in enumerate(settings):
                classes = [c for c, _ in prompts[setting.run]]
                pred = compose_image(backend, stored[setting.run].results, classes, size, setting.how).label_map
                confusion[s] += confusion_matrix_torch(torch.where(pred == IGNORE, n, pred), gt, n, n + 1)
        rows = []
        for s, setting in enumerate(settings):
            per_class, miou = class_ious(confusion[s].numpy(), class_set)
            used = composition_record(setting.how) == records[setting.run].get("composition")
            rows.append({**setting.row(), "used": "yes" if used else "", "best": "", "miou": miou, **per_class})
        best = max(range(len(rows)), key=lambda i: -math.inf if math.isnan(rows[i]["miou"]) else rows[i]["miou"])
        rows[best]["best"] = "yes"
        names = [class_set.class_names[c] for c in class_set.eval_indices]
        columns = SETTING_COLUMNS + ["used", "best", "miou"] + names
        write_csv(out / "sweep.csv", rows, columns)
        first = next((r for r in rows if r["used"] and settings[rows.index(r)].run == 0), None)
        summary = [{"class": c, "iou_used": (first or {}).get(c, math.nan), "iou_best": rows[best][c]}
                   for c in names] + [{"class": "mean", "iou_used": (first or {}).get("miou", math.nan),
                                       "iou_best": rows[best]["miou"]}]
        write_csv(out / "summary.csv", summary, ["class", "iou_used", "iou_best"])
        random = any(r.get("random_weights") for r in records)
        draw_heatmap(rows, out / "sweep_heatmap.png", random)
        prov = dict(records[0].get("provenance") or {})
        return run.finish(RunRecord.from_json({
            "stage": "sweep", "status": "complete", "images": len(image_ids), "classes": records[0]["classes"],
            "cache": records[0]["cache"], "split": records[0]["split"], "random_weights": random,
            "fingerprint": records[0].get("fingerprint"), "summary": summary, "provenance": prov,
            "runs": list(cfg.runs), "settings": len(settings), "cells": rows, "best": setting_label(rows[best]),
            "best_miou": rows[best]["miou"], "used": setting_label(first) if first else None,
            "table": format_table([{"setting": setting_label(r), "mIoU": r["miou"], "mark": _mark(r)} for r in rows],
                                  ["setting", "mIoU", "mark"])}))


def _mark(row: dict) -> str:
    return ", ".join(m for m in ("used", "best") if row.get(m))
