"""A stage declared outside samcache (here, a toy one in this file) shows in `samcache report` with the label and
metrics it declares: the report names no stage of its own."""

import math

from conftest import invoke
from samcache.pipeline.runs import read_csv, write_csv, write_record
from samcache.pipeline.stage_registry import Stage, register_stage

TOY_ROWS = [{"class": "road", "iou": 0.25, "score": 3.5}, {"class": "car", "iou": 0.75, "score": 1.5},
            {"class": "mean", "iou": 0.5, "score": 2.5}]


def _toy_run(path, knob: int) -> None:
    """What a toy stage leaves in its run folder: run.json and summary.csv (class, its declared columns)."""
    path.mkdir(parents=True)
    write_csv(path / "summary.csv", TOY_ROWS, ["class", "iou", "score"])
    write_record(path, {"stage": "toy", "status": "complete", "started": "", "seconds": 1.25, "knob": knob,
                        "images": 2, "classes": "seed5", "cache": str(path / "no-cache.zarr"),
                        "fingerprint": "tiny/random/float16/bfloat16", "random_weights": True,
                        "config": {"classes": "seed5"},
                        "provenance": {"split": "val", "model": "tiny", "images": 2, "split_images": 2,
                                       "random_weights": True, "oracle": False},
                        "outputs": ["run.json", "summary.csv"]})


def test_a_stage_registered_from_outside_appears_in_the_report_with_its_label_and_metrics(tmp_path):
    register_stage(Stage("toy", lambda record: f"toy knob {record['knob']}",
                         {"iou": "semantic_iou", "score": "toy_score"}, table="Toy scores"))
    _toy_run(tmp_path / "toy", knob=3)
    out = tmp_path / "report"
    result = invoke("report", tmp_path / "toy", "--out", out, check=True)
    rows = read_csv(out / "report.csv")
    assert {r["run"] for r in rows} == {"toy knob 3"}
    got = {(r["metric"], r["class"]): float(r["value"]) for r in rows}
    want = {**{("semantic_iou", r["class"]): r["iou"] for r in TOY_ROWS},
            **{("toy_score", r["class"]): r["score"] for r in TOY_ROWS}}
    assert got.keys() == want.keys()
    assert all(math.isclose(got[k], want[k]) for k in want)
    text = (out / "report.md").read_text()
    assert "Toy scores: toy knob 3" in text and "toy_score" in text
    assert "toy knob 3" in result.stdout
