"""A prompt strategy registered from outside (the block in docs/extending.md) is offered by zero-shot and
places its prompts where its rule says: checked against the labels read with plain zarr and
cityscapesScripts' label ids."""

import csv
import json

import numpy as np
import zarr
from cityscapesscripts.helpers.labels import name2label

from conftest import assert_one_line_error, invoke
from docs_text import code
from samcache.evaluation import strategies


def test_the_documented_strategy_runs_in_zero_shot(cache16, tmp_path, monkeypatch):
    monkeypatch.setattr(strategies, "STRATEGIES", dict(strategies.STRATEGIES))  # the test's registration goes after
    exec(compile(code("strategy"), "docs/extending.md", "exec"), {})  # noqa: S102 - the documented block itself
    assert "topmost" in invoke("zero-shot", "--help", check=True).stdout
    out = tmp_path / "run"
    invoke("zero-shot", "--cache", cache16, "--split", "val", "--prompt", "topmost", "--limit", "2",
           "--num-workers", "0", "--visualize", "0", "--out", out, check=True)
    val = zarr.open_group(str(cache16), mode="r")["val"]
    ids = list(val["image_ids"][:])
    with open(out / "detailed_results.csv") as f:
        rows = list(csv.DictReader(f))
    assert rows and {r["image_id"] for r in rows} == set(ids[:2])
    for row in rows:
        labels = val["labels"][ids.index(row["image_id"])]
        y, x = np.argwhere(labels == name2label[row["class"]].id)[0]  # first pixel of the class, row by row
        assert json.loads(row["points"]) == [[x, y]], row
    assert "prompt: topmost" in (out / "config.yaml").read_text()


def test_an_unknown_strategy_is_one_line():
    assert_one_line_error(invoke("zero-shot", "--prompt", "topmost"), "'topmost' is not one of", "'box', 'text'")
