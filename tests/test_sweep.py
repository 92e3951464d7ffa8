"""samcache sweep: every setting scored from a text pass's stored decoder outputs equals a full zero-shot run
with that setting (sam3_tiny, random weights; the semantic-head rule reads no stored instance and composes with the
same function); the report shows the sweep; bad sweeps are one line."""

from __future__ import annotations

import csv
import json

import pytest

pytest.importorskip("sam3")

from conftest import assert_one_line_error, invoke  # noqa: E402

TEXT = ["--prompt", "text", "--phrase", "car=automobile", "--num-workers", "0", "--visualize", "0", "--quiet"]


def _ious(run):
    """A run's per-class IoU and mean, as run.json records them (full precision)."""
    return {r["class"]: r["iou_semantic"] for r in json.loads((run / "run.json").read_text())["summary"]}


def test_every_sweep_cell_equals_a_full_run_and_the_report_shows_the_sweep(sam3_cache, tmp_path):
    kept = tmp_path / "kept"
    invoke("zero-shot", "--cache", sam3_cache, *TEXT, "--score-threshold", "0.2", "--min-instance-area", "0",
           "--keep-scores", "--out", kept, check=True)
    record = json.loads((kept / "run.json").read_text())
    assert record["stored_scores"]["bytes_per_image"] == sum(p.stat().st_size for p in (kept / "scores").iterdir())
    sweep = tmp_path / "sweep"
    invoke("sweep", kept, "--compose", "instances,semantic-head,fused", "--score-threshold", "0.2,0.25",
           "--min-instance-area", "0,100", "--fused-presence", "yes,no", "--out", sweep, "--quiet", check=True)
    rows = json.loads((sweep / "run.json").read_text())["cells"]
    assert len(rows) == 2 * 2 + 1 + 2 * 2 == len(list(csv.DictReader(open(sweep / "sweep.csv"))))
    cells = {(r["rule"], r.get("score_threshold"), r.get("min_instance_area"), r.get("fused_presence")): r
             for r in rows}
    full = {("instances", 0.25, 100, None): ["--score-threshold", "0.25", "--min-instance-area", "100"],
            ("fused", 0.2, None, False): ["--compose", "fused", "--score-threshold", "0.2", "--no-fused-presence"]}
    names = list(_ious(kept))
    for key, args in full.items():
        out = tmp_path / key[0]
        invoke("zero-shot", "--cache", sam3_cache, *TEXT, *args, "--out", out, check=True)
        assert {n: cells[key][n if n != "mean" else "miou"] for n in names} == _ious(out), key
    own = cells[("instances", 0.2, 0, None)]
    assert own["used"] == "yes" and {n: own[n if n != "mean" else "miou"] for n in names} == _ious(kept)
    assert sum(r["best"] == "yes" for r in rows) == 1
    assert len({r["miou"] for r in rows}) > 1  # the settings differ on this image

    report = tmp_path / "report"
    invoke("report", kept, sweep, "--out", report, check=True)
    text = (report / "report.md").read_text()
    assert "![sweep heat map](report_sweep.png)" in text and (report / "report_sweep.png").stat().st_size
    assert "Sweep of stored text-prompt outputs" in text and "the best setting means nothing" in text

    proc = invoke("sweep", kept, "--compose", "fused", "--score-threshold", "0.05", "--out", tmp_path / "s")
    assert_one_line_error(proc, "--score-threshold 0.05 is below 0.1", "--keep-scores-from 0.05")
    proc = invoke("sweep", kept, "--score-threshold", "0.1,x", "--out", tmp_path / "s")
    assert_one_line_error(proc, "--score-threshold takes comma-separated values", "'x'")
    proc = invoke("sweep", tmp_path / "fused", "--out", tmp_path / "s")
    assert_one_line_error(proc, "is not a text pass with stored scores")
    assert not (tmp_path / "s").exists()
