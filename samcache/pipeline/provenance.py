"""What every result says about where it came from: split, model, the subset scored, RANDOM, ORACLE,
and for a trained head what it was trained on (a train subset, a train set that grew, TRAIN=VAL).

One dict per run, recorded in run.json, repeated as columns of its summary.csv and of report.csv,
so that no table can be read without them (a train-split run beside val runs, a --limit subset,
random weights beside a real checkpoint, an oracle choice beside SAM's own, a head scored on the
images it was trained on).
"""

from __future__ import annotations

import warnings

import numpy as np

from samcache.errors import SamcacheError, SamcacheWarning

COLUMNS = ["split", "model", "images", "split_images", "random_weights", "oracle", "dataset"]
# heads (train-head, evaluate): the split trained on, its images used of those it holds (the last epoch's), whether
# the scored split is the trained one, and whether the train set grew between epochs (a resumed run)
TRAIN_COLUMNS = ["train_split", "train_images", "train_split_images", "train_is_val", "train_grew", "train_dataset"]
TRAIN_IS_VAL = "TRAIN=VAL"
TRAIN_IS_VAL_NOTE = (f"Runs marked {TRAIN_IS_VAL} are scored on the split their head was trained on: their IoUs "
                     f"measure the fit to the training images, not accuracy on unseen ones.")


def provenance(split, scored: int, random_weights: bool, oracle: bool = False) -> dict:
    """``split``: the CacheSplit scored; ``scored``: images scored. ``split_images`` counts the images the data
    folder's split held when it was extracted (more than the cache holds after ``extract --limit``)."""
    dropped = len(split.dropped & set(split.image_ids))  # never encoded, gone from the dataset: not in the split
    in_split = max(int(split.listed or 0), len(split) - dropped)
    prov = {"split": split.name, "model": split.fingerprint.model_type, "images": int(scored),
            "split_images": in_split, "random_weights": bool(random_weights), "oracle": bool(oracle),
            "dataset": split.dataset.domain}
    return {**prov, "dropped": dropped} if dropped else prov


def describe(prov: dict, label: str = "") -> str:
    """'split val, model tiny, 2/4 images (subset), RANDOM weights, ORACLE' (for labels, lists and notes); what
    ``label`` (the run's name in a report) already says is not said again."""
    parts = [f"split {prov.get('split', '?')}", f"model {prov.get('model', '?')}"]
    if prov.get("dataset"):
        parts.insert(0, f"dataset {prov['dataset']}")
    if prov.get("images") is not None:
        subset = prov["images"] < prov.get("split_images", prov["images"])
        parts.append(f"{prov['images']}/{prov.get('split_images', prov['images'])} images"
                     + (" (subset)" if subset else ""))
    if prov.get("train_split"):
        parts.append(describe_training(prov))
    if prov.get("random_weights") and not label.endswith("RANDOM"):
        parts.append("RANDOM weights")
    if prov.get("oracle") and "ORACLE" not in label:
        parts.append("ORACLE")
    return ", ".join(parts)


def training(split: str | None, images: int | None, split_images: int | None, is_val: bool, grew: bool,
             dataset: str | None = None) -> dict:
    """A head's TRAIN_COLUMNS: ``split``/``images``/``split_images``/``dataset`` as ``provenance`` has them for the
    scored split."""
    return {"train_split": split, "train_images": images, "train_split_images": split_images,
            "train_is_val": bool(is_val), "train_grew": bool(grew), "train_dataset": dataset}


def train_subset(prov: dict) -> bool:
    return (prov.get("train_images") or 0) < (prov.get("train_split_images") or 0)


def describe_training(prov: dict) -> str:
    """'trained on split train, 2/6 images (subset), train set grew, TRAIN=VAL (scored on its training split)'."""
    text = f"trained on split {prov['train_split']}"
    if prov.get("train_dataset") and prov.get("train_dataset") != prov.get("dataset"):
        text += f" of {prov['train_dataset']}"
    if prov.get("train_images") is not None:
        text += f", {prov['train_images']}/{prov.get('train_split_images', prov['train_images'])} images"
        text += " (subset)" if train_subset(prov) else ""
    text += ", train set grew between epochs" if prov.get("train_grew") else ""
    return text + (f", {TRAIN_IS_VAL} (scored on its training split)" if prov.get("train_is_val") else "")


def warn_train_is_val(split: str, stage: str) -> None:
    """Scoring a head on the split it was trained on is allowed (a fit check), but never silently."""
    warnings.warn(f"{stage} scores split {split}, the split the head is trained on: its IoUs measure the fit to the "
                  f"training images, not accuracy on unseen ones (outputs are marked {TRAIN_IS_VAL})", SamcacheWarning)


def warn_subset(prov: dict, stage: str) -> None:
    """Say so when a run scores fewer images than its split holds, and when images left the dataset."""
    if prov.get("dropped"):
        n = prov["dropped"]
        warnings.warn(f"split {prov['split']}: {n} image{'s were' if n > 1 else ' was'} dropped from the dataset "
                      f"(files gone before being encoded); the split counts {prov['split_images']}",
                      SamcacheWarning)
    if prov["images"] < prov["split_images"]:
        warnings.warn(f"{stage} uses {prov['images']} of the {prov['split_images']} images of split {prov['split']} "
                      f"(--limit, or a split extracted with --limit): a subset", SamcacheWarning)


def with_columns(rows: list[dict], prov: dict, columns: list[str] = COLUMNS) -> list[dict]:
    return [{**row, **{k: prov.get(k) for k in columns}} for row in rows]


def nothing_to_score(d) -> SamcacheError | None:
    """``d``: a decoding session (``evaluation.decoding.Decoding``). The error when no image of the run holds a
    pixel of an evaluated class (zero-shot and clicks agree)."""
    evaluated = np.zeros(256, bool)
    evaluated[np.isin(d.class_set.lut, d.class_set.eval_indices)] = True
    if any(evaluated[d.split.labels[r]].any() for r in d.rows):
        return None
    return SamcacheError(f"nothing to score: none of the {len(d.rows)} image(s) of split {d.split.name} holds a "
                         f"pixel of an evaluated class of class set {d.cfg.classes} "
                         f"({', '.join(d.class_set.eval_names)}); choose another --split or --classes")


def decoding_provenance(d, oracle: bool) -> dict:
    """Split, model, images scored of the split's, RANDOM, ORACLE (``provenance.py``)."""
    return provenance(d.split, len(d.rows), d.weights.random, oracle)
