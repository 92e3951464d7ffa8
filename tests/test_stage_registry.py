"""A stage declared outside samcache (here, a toy one in this file) shows in `samcache report` with the label and
metrics it declares: the report names no stage of its own."""

import math

from conftest import assert_one_line_error, invoke
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


def test_the_documented_stage_runs_and_reports_what_plain_zarr_counts(cache16, tmp_path, monkeypatch):
    """docs/extending.md's whole stage, run as written on a real cache: its run folder, and its table in the report."""
    import numpy as np
    import zarr

    from docs_text import code
    from samcache.pipeline import stage_registry

    monkeypatch.setattr(stage_registry, "_STAGES", dict(stage_registry._STAGES))  # the registration goes after
    monkeypatch.chdir(tmp_path)
    block = code("stage").replace('cache="cache/cityscapes_vit_h.zarr"', f"cache={str(cache16)!r}")
    exec(compile(block, "docs/extending.md", "exec"), {})  # noqa: S102 - the documented stage itself
    run = tmp_path / "runs" / "pixel-share"
    assert {"run.json", "config.yaml", "run.log", "summary.csv"} <= {p.name for p in run.iterdir()}
    labels = zarr.open_group(str(cache16), mode="r")["val"]["labels"][:]
    ids, counts = np.unique(labels, return_counts=True)
    want = {str(i): n / labels.size for i, n in zip(ids, counts)}
    got = {r["class"]: float(r["share"]) for r in read_csv(run / "summary.csv")}  # written with 4 decimals
    assert got.keys() == want.keys() and all(math.isclose(got[k], want[k], abs_tol=5e-5) for k in want)
    invoke("report", run, "--out", tmp_path / "report", check=True)
    rows = read_csv(tmp_path / "report" / "report.csv")
    assert {r["run"] for r in rows if r["metric"] == "pixel_share"} == {"pixel share of val"}


def test_a_label_that_fails_on_a_record_is_one_line(tmp_path):
    register_stage(Stage("toy", lambda record: f"toy {record['missing']}", {"iou": "semantic_iou"}))
    _toy_run(tmp_path / "toy", knob=1)
    proc = invoke("report", tmp_path / "toy", "--out", tmp_path / "report")
    assert_one_line_error(proc, "the toy stage's report label fails", "KeyError")
