"""What every result says about where it came from: split, model, the subset scored, RANDOM, ORACLE.

One dict per run, recorded in run.json, repeated as columns of its summary.csv and of report.csv,
so that no table can be read without them (a train-split run beside val runs, a --limit subset,
random weights beside a real checkpoint, an oracle choice beside SAM's own).
"""

from __future__ import annotations

import warnings

import numpy as np

from samcache.errors import SamcacheError, SamcacheWarning

COLUMNS = ["split", "model", "images", "split_images", "random_weights", "oracle"]


def provenance(split, scored: int, random_weights: bool, oracle: bool = False) -> dict:
    """``split``: the CacheSplit scored; ``scored``: images scored. ``split_images`` counts the images the data
    folder's split held when it was extracted (more than the cache holds after ``extract --limit``)."""
    dropped = len(split.dropped & set(split.image_ids))  # never encoded, gone from the dataset: not in the split
    in_split = max(int(split.listed or 0), len(split) - dropped)
    prov = {"split": split.name, "model": split.fingerprint.model_type, "images": int(scored),
            "split_images": in_split, "random_weights": bool(random_weights), "oracle": bool(oracle)}
    return {**prov, "dropped": dropped} if dropped else prov


def describe(prov: dict, label: str = "") -> str:
    """'split val, model tiny, 2/4 images (subset), RANDOM weights, ORACLE' (for labels, lists and notes); what
    ``label`` (the run's name in a report) already says is not said again."""
    parts = [f"split {prov.get('split', '?')}", f"model {prov.get('model', '?')}"]
    if prov.get("images") is not None:
        subset = prov["images"] < prov.get("split_images", prov["images"])
        parts.append(f"{prov['images']}/{prov.get('split_images', prov['images'])} images"
                     + (" (subset)" if subset else ""))
    if prov.get("random_weights") and not label.endswith("RANDOM"):
        parts.append("RANDOM weights")
    if prov.get("oracle") and "ORACLE" not in label:
        parts.append("ORACLE")
    return ", ".join(parts)


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


def with_columns(rows: list[dict], prov: dict) -> list[dict]:
    return [{**row, **{k: prov[k] for k in COLUMNS}} for row in rows]


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
