"""The gallery's label maps of runs that saved no predictions: each run's own decoding, again, on a few images.

A replay runs the stage's decoding code with the run's config (read from run.json) on the gallery's images
only, with ``--save-predictions`` into a scratch folder: prompts and first clicks are drawn from (seed, row)
generators, so an image's label map is the one the run made. Only the prompt decoder or the head runs, from
the cached features; the image encoder is never built. Reading the PNGs back is ``report_gallery``'s.
"""

from __future__ import annotations

from pathlib import Path

from samcache.errors import SamcacheError

REPLAYED = {"save_predictions": True, "visualize": 0, "num_workers": 0, "device": "auto", "limit": None,
            "out": None, "overwrite": False}


def _config(cls, record: dict, **extra):
    try:
        return cls.model_validate({**(record.get("config") or {}), **REPLAYED, **extra})
    except Exception as exc:  # pydantic's own error: a record written by another samcache version
        raise SamcacheError(f"its run.json config does not load ({type(exc).__name__})") from None


def _rows(d, image_ids: list[str]) -> list[int]:
    rows = [d.split.row_of(i) for i in image_ids]
    d.rows = sorted(rows)
    return d.rows


def replay_zero_shot(run_dir: Path, record: dict, image_ids: list[str], scratch: Path) -> None:
    """Point, box and text prompts: the composed label maps, as ``zero-shot --save-predictions`` writes them."""
    from samcache.evaluation.decoding import open_decoding
    from samcache.pipeline.configs import ZeroShotConfig

    text = record.get("strategy") == "text"
    cfg = _config(ZeroShotConfig, record, **({"save_instances": False, "keep_scores": False} if text else {}))
    d = open_decoding(cfg)
    _rows(d, image_ids)
    if text:
        from samcache.pipeline.zero_shot_text import concept_rules, decode_rows

        phrases, how = concept_rules(d.cfg)
        decode_rows(d, phrases, how, scratch, False)
    else:
        from samcache.pipeline.zero_shot import decode_rows

        decode_rows(d, scratch, False)


def replay_clicks(run_dir: Path, record: dict, image_ids: list[str], scratch: Path) -> None:
    """Every object after its last click, one label map per image (``clicks --save-predictions``)."""
    from samcache.evaluation.decoding import open_decoding
    from samcache.pipeline.clicks import click_objects
    from samcache.pipeline.configs import ClicksConfig

    d = open_decoding(_config(ClicksConfig, record))
    _rows(d, image_ids)
    click_objects(d, scratch, False)


def replay_head(run_dir: Path, record: dict, image_ids: list[str], scratch: Path) -> None:
    """The head's argmax at original resolution (``--save-predictions``): a train-head run's last epoch (the one
    its IoUs are of), or the checkpoint an evaluate run scored."""
    from samcache.cache.reader import open_cache
    from samcache.data.labels import get_class_set
    from samcache.evaluation.datasets import CacheHeadDataset
    from samcache.evaluation.heads import EvalOutputs, evaluate, load_head
    from samcache.features.device import resolve_device
    from samcache.pipeline.head_checkpoints import checkpoint_path

    if record["stage"] == "head":
        path, split = checkpoint_path(run_dir, record["epoch"]), (record.get("provenance") or {}).get("split")
        split = split or record["config"]["val_split"]
    else:
        path, split = Path(record["head"]), record["split"]
    device = resolve_device("auto")
    model, ckpt = load_head(path, device)
    cache = str(record["cache"])
    opened = open_cache(cache).split(split)
    rows = sorted(opened.row_of(i) for i in image_ids)
    classes = get_class_set(ckpt["class_set"], opened.dataset)
    if record["stage"] == "evaluate":  # scored on the classes both datasets label (evaluate's own choice)
        from samcache.pipeline.evaluate import train_dataset

        classes = classes.shared_with(train_dataset(ckpt))
    dataset = CacheHeadDataset(cache, split, classes, rows, mode="eval", features=ckpt.get("features"))
    evaluate(model, dataset, None, 4, 0, device, EvalOutputs(predictions_dir=scratch / "predictions"), False)
