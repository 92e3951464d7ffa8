"""Stage 2a by concept prompts (``zero-shot --prompt text``): class names as noun phrases, no ground truth read.

Every class's phrases of a batch of images go through one grounding call from the cached trunks;
each image is composed into one label map (``--compose instances``: the SAM 3 paper's filtering by
presence x score and area, highest score wins; ``semantic-head``: argmax of the semantic head; ``fused``:
SegEarth-OV3's rule, ``evaluation.fused``) and
scored with the same dataset-level confusion matrix as the head. Labels are read only to score.
``detailed_results.csv`` has the point strategies' columns: one row per image and class present in its
ground truth or its label map, that image's IoU of the class (void excluded, unlabeled pixels count as
misses); no prompt coordinates and no score (a class's pixels may come from several instances).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from samcache.data.labels import IGNORE
from samcache.errors import SamcacheError
from samcache.evaluation.concept_decoding import Composition, compose_image, decode_concepts
from samcache.evaluation.concepts import InstanceComposition, SemanticComposition, phrase_map
from samcache.evaluation.fused import FusedComposition
from samcache.evaluation.phrase_sets import load_phrase_set
from samcache.evaluation.stored_scores import SCORES_DIR, store_image
from samcache.evaluation.decoding import open_decoding
from samcache.evaluation.instance_results import write_instances
from samcache.evaluation.metrics import class_ious, confusion_matrix_torch, image_rows
from samcache.evaluation.predictions import save_prediction
from samcache.evaluation.visualize import save_overlay, source_image
from samcache.fileio import write_text
from samcache.messages import random_weights_suffix
from samcache.pipeline.config import new_run_dir
from samcache.pipeline.provenance import COLUMNS as PROVENANCE_COLUMNS
from samcache.pipeline.provenance import decoding_provenance, with_columns
from samcache.pipeline.stage import decoding_record, run_stage
from samcache.pipeline.stage_registry import TEXT_LABEL
from samcache.pipeline.runs import DETAIL_COLUMNS, write_csv
from samcache.procs import check_interrupt

LABEL = TEXT_LABEL  # recorded in run.json; the report's label adds the composition
SUMMARY_COLUMNS = ["class", "iou_semantic", "phrases"]


def parse_phrases(items: list[str]) -> dict[str, list[str]]:
    """``["person=pedestrian", ...]`` -> {class: [phrases]}; one line per malformed item."""
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, phrase = item.partition("=")
        if not sep or not name.strip() or not phrase.strip():
            raise SamcacheError(f"--phrase takes CLASS=PHRASE (e.g. person=pedestrian), got {item!r}")
        if "=" in phrase or "," in phrase:
            raise SamcacheError(f"one phrase per --phrase (repeat the option for more), got {item!r}")
        out.setdefault(name.strip(), []).append(phrase.strip())
    return out


def run_text_zero_shot(cfg, progress: bool = True) -> dict:
    """Decode every image of the split by concept prompts; write the run folder; return its record."""
    phrases, how = concept_rules(cfg)  # bad phrase maps fail before anything
    d = open_decoding(cfg)
    if not d.decoder.backend.text_prompts:
        raise SamcacheError(f"--prompt text needs a SAM 3 cache; {cfg.cache} holds "
                           f"{d.split.fingerprint.model_type} features")
    cfg, class_set = d.cfg, d.class_set
    out = Path(cfg.out) if cfg.out else new_run_dir(f"zero-shot-text-{cfg.compose}")
    prov = decoding_provenance(d, oracle=False)
    with run_stage("zero-shot", cfg, out, [cfg.cache], prov=prov) as run:
        write_text(out / "phrases.yaml", yaml.safe_dump(phrases.as_config(class_set), sort_keys=False))
        confusion, listed, details, stored = decode_rows(d, phrases, how, out, progress)
        seconds = run.seconds()
        semantic, miou = class_ious(confusion, class_set)
        names = phrases.as_config(class_set)
        summary = [{"class": name, "iou_semantic": semantic.get(name, np.nan), "phrases": "; ".join(names[name])}
                   for name in names] + [{"class": "mean", "iou_semantic": miou, "phrases": ""}]
        write_csv(out / "detailed_results.csv", details, DETAIL_COLUMNS)
        write_csv(out / "summary.csv", with_columns(summary, prov), SUMMARY_COLUMNS + PROVENANCE_COLUMNS)
        prompts = len(d.rows) * len(phrases.prompts())
        return run.finish(decoding_record(
            d, "zero-shot", seconds, strategy="text", multimask=cfg.compose, oracle=False, label=LABEL,
            ground_truth_used=False, compose=cfg.compose, prompts=prompts, miou_semantic=miou, summary=summary,
            composition=composition_record(how), phrase_set=cfg.phrase_set, provenance=prov,
            stored_scores=({"folder": SCORES_DIR, "from": cfg.keep_scores_from, "bytes": stored,
                            "bytes_per_image": round(stored / max(1, len(d.rows)))} if cfg.keep_scores else None),
            instance_threshold=cfg.instance_threshold if cfg.save_instances else None,
            instances_listed=listed if cfg.save_instances else None,
            prompts_per_s=prompts / seconds if seconds else 0.0))


def concept_rules(cfg) -> tuple:
    """(the class phrases, the composition) that make a text run's label maps."""
    return (phrase_map(cfg.classes, parse_phrases(cfg.phrases), load_phrase_set(cfg.phrase_set, cfg.classes)),
            composition_of(cfg))


def composition_of(cfg) -> Composition:
    """A zero-shot config's composition: the rule and its settings (those of the other rules stay default)."""
    listed = cfg.instance_threshold if cfg.save_instances else None
    return Composition(cfg.compose, InstanceComposition(cfg.score_threshold, cfg.min_instance_area, listed),
                       SemanticComposition(cfg.semantic_threshold),
                       FusedComposition(cfg.score_threshold, cfg.fused_presence, cfg.fused_instances,
                                        cfg.fused_semantic, cfg.fused_threshold))


def composition_record(how: Composition) -> dict:
    """run.json's ``composition``: the rule and the settings it reads (one formula each in docs/sam3.md)."""
    if how.compose == "instances":
        return {"rule": "instances", "score_threshold": how.instance.score_threshold,
                "min_instance_area": how.instance.min_area}
    if how.compose == "semantic-head":
        return {"rule": "semantic-head", "semantic_threshold": how.semantic.threshold}
    f = how.fused
    return {"rule": "fused", "score_threshold": f.score_threshold, "fused_presence": f.presence,
            "fused_instances": f.instances, "fused_semantic": f.semantic, "fused_threshold": f.threshold}


def decode_rows(d, phrases, how: Composition, out: Path, progress: bool) -> tuple[np.ndarray, int, list[dict], int]:
    """The split's confusion matrix, the number of instances listed for AP (``--save-instances``), the
    per-image rows of ``detailed_results.csv``, and the bytes of stored scores (``--keep-scores``)."""
    cfg, class_set, split, device = d.cfg, d.class_set, d.split, d.device
    n = class_set.num_classes  # the extra prediction column: unlabeled
    confusion = torch.zeros((n, n + 1), dtype=torch.int64, device=device)
    per_batch = cfg.images_per_batch or (8 if device.type == "cuda" else 1)
    listed = shown = stored = 0
    details: list[dict] = []
    if cfg.keep_scores:
        (out / SCORES_DIR).mkdir(exist_ok=True)
    bar = tqdm(total=len(d.rows), unit="img", desc=f"zero-shot text/{cfg.compose}", disable=not progress)
    for start in range(0, len(d.rows), per_batch):
        check_interrupt()
        rows = d.rows[start:start + per_batch]
        maps = [split.features(r) for r in rows]
        features = {name: torch.from_numpy(np.stack([m[name] for m in maps])).float().to(device) for name in maps[0]}
        sizes = [tuple(int(v) for v in split.original_size(r)) for r in rows]
        decoded = decode_concepts(d.decoder.backend, d.decoder.model, features, len(rows), phrases)
        classes = [c for c, _ in phrases.prompts()]
        for row, results, size in zip(rows, decoded, sizes):
            pred = compose_image(d.decoder.backend, results, classes, size, how, cfg.save_instances)
            if cfg.keep_scores:
                stored += store_image(out / SCORES_DIR / f"{split.image_ids[row]}.npz", [p for _, p in phrases.prompts()],
                                      results, cfg.keep_scores_from)
            gt = class_set.to_index(split.label_ids(row))  # read once: scoring and the overlay
            class_map = torch.from_numpy(gt).to(device)
            label_map = torch.where(pred.label_map == IGNORE, n, pred.label_map).to(device)
            image_confusion = confusion_matrix_torch(label_map, class_map, n, n + 1)
            confusion += image_confusion
            image_id = split.image_ids[row]
            details += _image_rows(image_id, image_confusion, class_set, cfg.compose)
            pred_map = pred.label_map.cpu().numpy().astype(np.uint8)
            if cfg.save_predictions:
                save_prediction(out / "predictions", image_id, class_set.to_label_ids(pred_map), class_set.source)
            if cfg.save_instances and pred.instances is not None:
                inst = pred.instances
                write_instances(out / "instances", image_id, inst.masks.cpu().numpy(),
                                class_set.pred_label_ids[inst.classes.cpu().numpy()], inst.confidences.cpu().numpy())
                listed += len(inst.confidences)
            if shown < cfg.visualize:
                save_overlay(out / "visualizations" / f"{image_id}.png",
                             source_image(split, image_id),
                             gt, pred_map, class_set,
                             f"{image_id}  prompt=text  compose={cfg.compose}  (no ground truth used to prompt)"
                             + random_weights_suffix(d.weights.random))
                shown += 1
        bar.update(len(rows))
    bar.close()
    return confusion.cpu().numpy(), listed, details, stored


def _image_rows(image_id: str, confusion: torch.Tensor, class_set, compose: str) -> list[dict]:
    """One image's (n, n+1) confusion matrix -> a row per evaluated class in its ground truth or label map."""
    return [{**row, "strategy": "text", "multimask": compose, "points": "", "point_labels": "", "box": "", "score": ""}
            for row in image_rows(image_id, confusion.cpu().numpy(), class_set)]
