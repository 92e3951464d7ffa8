"""cityscapesScripts' own evaluators, runnable with the numpy samcache installs (>= 2.4).

cityscapesScripts 2.3 calls ``np.in1d`` (removed in numpy 2.4) in both evaluators, and the instance
evaluator's JSON dump meets numpy scalars. ``numpy2_compat`` restores the one and teaches the other for
its duration; neither changes a number the evaluators compute.

    CITYSCAPES_DATASET=data/cityscapes CITYSCAPES_RESULTS=runs/sam3-text/instances \\
        python -m samcache.evaluation.official instance

runs ``evalInstanceLevelSemanticLabeling``'s own ``main`` (``pixel``: ``evalPixelLevelSemanticLabeling``,
e.g. on a run's ``predictions/``) with the same environment variables and arguments. ``--scored-only SPLIT``
evaluates only the images of SPLIT the run has predictions for (a ``--limit`` run), where the evaluators would
stop at the first image without one. What the evaluators write goes beside the predictions (their
result JSON) or to a temporary folder (the instance evaluator's ground-truth cache, which it would keep
in its package folder and reuse for another dataset, and its matches.json, written to the working
folder); nothing goes into the dataset.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from samcache.data.datasets import get_dataset

EVALUATORS = {"pixel": "evalPixelLevelSemanticLabeling", "instance": "evalInstanceLevelSemanticLabeling"}


def _in1d(a, b, assume_unique: bool = False, invert: bool = False) -> np.ndarray:
    """numpy < 2.4's ``in1d``: ``isin`` on the flattened first array."""
    return np.isin(np.ravel(a), b, assume_unique=assume_unique, invert=invert)


def _write_json(data: dict, path: str) -> None:
    with open(path, "w") as f:
        json.dump(data, f, default=lambda o: o.item() if isinstance(o, np.generic) else o.__dict__)


@contextlib.contextmanager
def numpy2_compat() -> Iterator[None]:
    """cityscapesScripts' evaluators work under numpy >= 2.4 for the duration (then everything is restored)."""
    from cityscapesscripts.evaluation import evalInstanceLevelSemanticLabeling as instance

    added = not hasattr(np, "in1d")
    if added:
        np.in1d = _in1d
    write = instance.writeDict2JSON
    instance.writeDict2JSON = _write_json
    try:
        yield
    finally:
        instance.writeDict2JSON = write
        if added:
            del np.in1d


PREDICTIONS = {"pixel": "_labelIds.png", "instance": "_pred.txt"}  # as samcache writes them


def scored_lists(kind: str, results: Path, dataset: Path, split: str) -> tuple[list[str], list[str]]:
    """(predictions, ground truths) for the images a run scored (a --limit run holds a subset of the split)."""
    preds = sorted(results.rglob(f"*{PREDICTIONS[kind]}"))
    gts = []
    for pred in preds:
        image_id = pred.name[:-len(PREDICTIONS[kind])]
        record = get_dataset("cityscapes").record_for(dataset, split, image_id)  # these evaluators' own layout
        gt = record.label_path if kind == "pixel" else record.instance_path
        if not gt.is_file():
            raise SystemExit(f"Error: no ground truth for {pred}: {gt} is missing")
        gts.append(str(gt))
    if not preds:
        raise SystemExit(f"Error: no *{PREDICTIONS[kind]} under {results}")
    return [str(p) for p in preds], gts


USAGE = f"""usage: python -m samcache.evaluation.official {{{'|'.join(EVALUATORS)}}} [--scored-only SPLIT | \
PREDICTIONS... GROUND_TRUTHS...]

Run cityscapesScripts' own evaluator (pixel: evalPixelLevelSemanticLabeling on *_labelIds.png label maps, e.g. a
run's predictions/; instance: evalInstanceLevelSemanticLabeling on *_pred.txt instance results, e.g. a SAM 3 text
run's instances/), under the numpy samcache installs.

environment:
  CITYSCAPES_DATASET   the dataset folder (holding gtFine/); the ground truth is read from it, nothing is written
  CITYSCAPES_RESULTS   the folder of predictions (relative to the working folder or absolute); the evaluator's
                       result JSON (result{{Pixel,Instance}}LevelSemanticLabeling.json) is written into it

options:
  --scored-only SPLIT  evaluate only the images of SPLIT that have a prediction (a --limit run); without it the
                       evaluator wants one for every ground-truth image of every split it finds
  -h, --help           show this text and exit
"""


def main(argv: list[str] | None = None) -> int:
    """``pixel|instance [--scored-only SPLIT | the evaluator's own arguments]``; results go to CITYSCAPES_RESULTS."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(USAGE, end="")
        return 0
    if not argv or argv[0] not in EVALUATORS:
        print(f"Error: usage: python -m samcache.evaluation.official {'|'.join(EVALUATORS)} [--scored-only SPLIT "
              f"| the evaluator's own arguments] (--help explains)", file=sys.stderr)
        return 2
    kind, rest = argv[0], argv[1:]
    results = os.environ.get("CITYSCAPES_RESULTS")
    if results and not os.path.isdir(results):
        print(f"Error: CITYSCAPES_RESULTS={results} is not a folder (run from {os.getcwd()})", file=sys.stderr)
        return 2
    module = importlib.import_module(f"cityscapesscripts.evaluation.{EVALUATORS[kind]}")
    saved = sys.argv
    with tempfile.TemporaryDirectory() as tmp, numpy2_compat():
        if results:  # the evaluator's JSON goes beside the predictions (samcache's), not into the dataset; made
            # absolute here, as the scratch folder takes every relative path the instance evaluator writes
            module.args.exportFile = str(Path(results).resolve() / Path(module.args.exportFile).name)
        if kind == "instance":  # its ground-truth cache and matches.json: scratch, never the package or cwd
            module.args.gtInstancesFile = str(Path(tmp) / "gtInstances.json")
            module.writeDict2JSON = lambda data, path: _write_json(data, os.path.join(tmp, path)
                                                                   if not os.path.isabs(path) else path)
        try:
            if rest[:1] == ["--scored-only"]:
                if len(rest) != 2 or not results or "CITYSCAPES_DATASET" not in os.environ:
                    raise SystemExit("Error: --scored-only SPLIT needs CITYSCAPES_DATASET and CITYSCAPES_RESULTS")
                preds, gts = scored_lists(kind, Path(results), Path(os.environ["CITYSCAPES_DATASET"]), rest[1])
                module.args.predictionPath = os.path.abspath(results)  # what its own main would have set
                module.evaluateImgLists(preds, gts, module.args)
            else:
                sys.argv = [module.__file__, *rest]
                module.main()
        finally:
            sys.argv = saved  # numpy2_compat puts the evaluator's writeDict2JSON back on exit
    return 0


if __name__ == "__main__":
    sys.exit(main())
