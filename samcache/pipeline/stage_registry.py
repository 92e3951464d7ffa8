"""What `samcache report` knows of a stage, declared by the stage: its name, its label, its metrics.

``report.py`` names no stage: it reads a run's ``stage`` from run.json and asks this registry for its
descriptor. A new stage registers its own (``register_stage``) beside its logic and appears in reports
with the label and metrics it declares; the built-in stages are declared below. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from samcache.errors import SamcacheError
from samcache.pipeline.head_log import CURVES

# metrics compared across runs: one table per class set, one column per run (and the bar chart: semantic_iou)
COMPARED = {"semantic_iou": "Semantic IoU: one label map per image, false positives counted (dataset-level)",
            "prompted_iou": "Prompted-class IoU (zero-shot only: images containing the class; no false positives)"}
TEXT_LABEL = "zero-shot, text prompts, no ground truth used"  # a text-prompt run's label (no prompt sampled)


@dataclass(frozen=True)
class Chart:
    """A figure of a stage's runs in the report: ``draw([(label, run folder)], path, title flag)``."""

    file: str
    alt: str
    draw: Callable[[list[tuple[str, Path]], Path, str], None]


@dataclass(frozen=True)
class Gallery:
    """How a stage's runs join report.html's gallery. ``scores(run folder)``: {image id: that image's score}, from
    files the run kept (nothing runs again); ``score(record)``: what that score is, in words. ``replay(run folder,
    record, image ids, scratch)``: writes the run's label maps of those images into ``scratch/predictions`` as its
    ``--save-predictions`` would, from the cache without the encoder (None: only saved predictions are shown).
    ``labels_every_pixel``: the stage predicts a class everywhere (a head), so an unlabeled pixel of its saved
    labelIds is the class set's ``other`` (which official labelIds cannot name)."""

    scores: Callable[[Path], dict[str, float]]
    score: Callable[[dict], str]
    replay: Callable[[Path, dict, list[str], Path], None] | None = None
    labels_every_pixel: bool = False


@dataclass(frozen=True)
class Stage:
    """A stage as reports see it.

    ``metrics``: summary.csv column -> metric; metrics in ``COMPARED`` join the cross-run tables, the others
    form the run's own table titled ``table``. ``label``: the run's column name, from its record.
    ``label_names_split``: the label already says which split was scored. ``resume``: the command that
    finishes an unfinished run with --resume. ``seed_images``: encoder passes the seed workflow spends on
    the run (default: its images). ``provenance``: fills in what older records of the stage lack. ``gallery``:
    its runs' per-image scores and label maps in report.html (None: left out of the gallery). ``curves``: a file of
    the run folder shown as its training curves, drawn from ``metrics.csv`` when missing.
    """

    name: str
    label: Callable[[dict], str]
    metrics: dict[str, str]
    table: str = ""
    label_names_split: bool = False
    resume: str = ""
    chart: Chart | None = None
    seed_images: Callable[[dict], int] | None = None
    provenance: Callable[[dict, dict], dict] | None = None
    gallery: Gallery | None = None
    curves: str = ""

    def own_metrics(self) -> list[str]:
        """The metrics shown in the run's own table (not compared across runs), in declared order."""
        return [m for m in self.metrics.values() if m not in COMPARED]


_STAGES: dict[str, Stage] = {}


def register_stage(stage: Stage) -> Stage:
    """Declare a stage to reports (a later declaration of the same name replaces the earlier one)."""
    _STAGES[stage.name] = stage
    return stage


def stages() -> dict[str, Stage]:
    """Every registered stage, by name, in registration order."""
    return dict(_STAGES)


def stage_of(name: str) -> Stage:
    if name not in _STAGES:
        raise SamcacheError(f"no stage {name!r} is registered (known: {', '.join(_STAGES)})")
    return _STAGES[name]


# ---- the built-in stages --------------------------------------------------------------------------------

def _zero_shot_label(record: dict) -> str:
    if record.get("strategy") == "text":  # concept prompts: nothing sampled from the ground truth
        return f"{TEXT_LABEL} ({record.get('compose', 'instances')})"
    return f"zero-shot {record['strategy']}/{record['multimask']}" + (" ORACLE" if record.get("oracle") else "")


def _head_label(record: dict) -> str:
    multiscale = (record.get("config") or {}).get("head") == "multiscale"
    return f"{'multiscale ' if multiscale else ''}head ({record['epochs']} ep)"


def _head_seed_images(record: dict) -> int:
    """Every epoch's train images (a resumed run's train set may have grown) and val images."""
    train = record.get("train_images_over_epochs", record["epochs"] * record["train_images"])
    return train + record["epochs"] * record["val_images"]


def _head_provenance(record: dict, prov: dict) -> dict:
    if "train_is_val" not in prov:  # recorded before TRAIN=VAL was
        config = record.get("config") or {}
        prov.setdefault("train_split", config.get("train_split"))
        prov.setdefault("train_images", record.get("train_images"))
        prov["train_is_val"] = prov["train_split"] is not None and prov["train_split"] == prov["split"]
    return prov


def _evaluate_label(record: dict) -> str:
    best = " (best)" if record.get("chosen") == "best" else ""
    return f"evaluate epoch {record['epoch']}{best} on {record['split']}"


def _clicks_label(record: dict) -> str:  # NoC is capped at max_clicks: the cap belongs in the name
    return f"clicks max {record['max_clicks']}" + (" ORACLE" if record.get("oracle") else "")


def _click_chart(runs: list[tuple[str, Path]], path: Path, flag: str) -> None:
    from samcache.pipeline.report_charts import click_chart

    click_chart(runs, path, flag)


def _lazy(module: str, name: str) -> Callable:
    """A function of a heavier module (torch, matplotlib), imported when it is called: this registry stays light."""
    def call(*args):
        import importlib

        return getattr(importlib.import_module(module), name)(*args)

    return call


_SCORES, _REPLAY = "samcache.pipeline.report_scores", "samcache.pipeline.report_replay"
_HEAD_GALLERY = Gallery(_lazy(_SCORES, "head_scores"),
                        lambda r: "mean IoU of the classes in the image's ground truth or prediction (per_image.csv)",
                        _lazy(_REPLAY, "replay_head"), labels_every_pixel=True)


def _zero_shot_score(record: dict) -> str:
    if record.get("strategy") == "text":
        return "mean IoU of the classes in the image's ground truth or label map (detailed_results.csv)"
    return "mean prompted-class IoU of the classes in the image's ground truth (detailed_results.csv)"


register_stage(Stage("zero-shot", _zero_shot_label, {"iou_semantic": "semantic_iou", "iou_dataset": "prompted_iou"},
                     gallery=Gallery(_lazy(_SCORES, "zero_shot_scores"), _zero_shot_score,
                                     _lazy(_REPLAY, "replay_zero_shot"))))
register_stage(Stage("head", _head_label, {"iou": "semantic_iou"}, resume="train-head",
                     seed_images=_head_seed_images, provenance=_head_provenance, gallery=_HEAD_GALLERY,
                     curves=CURVES))
register_stage(Stage("evaluate", _evaluate_label, {"iou": "semantic_iou"}, label_names_split=True,
                     gallery=_HEAD_GALLERY))
register_stage(Stage("clicks", _clicks_label,
                     {"miou@1": "miou@1", "miou@5": "miou@5", "noc@85": "noc@85", "noc@90": "noc@90"},
                     table="Interactive clicks, per object", chart=Chart("report_clicks.png", "clicks", _click_chart),
                     gallery=Gallery(_lazy(_SCORES, "clicks_scores"),
                                     lambda r: "mean IoU of the image's objects after their last click (per_object.csv)",
                                     _lazy(_REPLAY, "replay_clicks"))))


def _everything_label(record: dict) -> str:
    if record.get("refined"):
        return f"head + SAM masks (ep {record.get('epoch')})"
    return f"SAM masks (points_per_side {(record.get('generator') or {}).get('points_per_side')})"


register_stage(Stage("everything", _everything_label,
                     {"iou": "semantic_iou", "iou_head": "the head before refinement", "masks_per_image":
                      "masks per image", "covered": "fraction of pixels in a mask"},
                     table="SAM's automatic masks",
                     gallery=Gallery(_lazy(_SCORES, "head_scores"),
                                     lambda r: "mean IoU of the classes in the image's ground truth or refined map "
                                               "(per_image.csv)", labels_every_pixel=True)))
