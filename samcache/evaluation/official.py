"""cityscapesScripts' own evaluators, runnable with the numpy samcache installs (>= 2.4).

cityscapesScripts 2.3 calls ``np.in1d`` (removed in numpy 2.4) in both evaluators, and the instance
evaluator's JSON dump meets numpy scalars. ``numpy2_compat`` restores the one and teaches the other for
its duration; neither changes a number the evaluators compute.

    CITYSCAPES_DATASET=data/cityscapes CITYSCAPES_RESULTS=runs/sam3-text/instances \\
        python -m samcache.evaluation.official instance

runs ``evalInstanceLevelSemanticLabeling``'s own ``main`` (``pixel``: ``evalPixelLevelSemanticLabeling``,
e.g. on a run's ``predictions/``) with the same environment variables and arguments, except that the
instance evaluator's ground-truth cache goes to a fresh temporary folder instead of its package folder,
where a stale one from another dataset would be reused silently.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in EVALUATORS:
        print(f"Error: usage: python -m samcache.evaluation.official {'|'.join(EVALUATORS)} [its own arguments]",
              file=sys.stderr)
        return 2
    module = importlib.import_module(f"cityscapesscripts.evaluation.{EVALUATORS[argv[0]]}")
    saved = sys.argv
    with tempfile.TemporaryDirectory() as tmp, numpy2_compat():
        if hasattr(module.args, "gtInstancesFile"):
            module.args.gtInstancesFile = str(Path(tmp) / "gtInstances.json")
        sys.argv = [module.__file__, *argv[1:]]
        try:
            module.main()
        finally:
            sys.argv = saved
    return 0


if __name__ == "__main__":
    sys.exit(main())
