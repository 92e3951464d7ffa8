"""What a head was trained on reaches every output: a train subset, TRAIN=VAL, and a train set that grew
between the sessions of a resumed run (refused unless --allow-train-growth); a resumed run's time is every
session's."""

import csv
import json

import pytest

from conftest import assert_one_line_error, extract_cfg, invoke, snapshot

TRAIN = ["--epochs", "2", "--batch-size", "2", "--width", "8", "--num-workers", "0", "--preload", "ram",
         "--device", "cpu", "--visualize", "0", "--quiet"]


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_subset_and_train_is_val_reach_summary_metrics_and_report(cache16, tmp_path):
    subset, same = tmp_path / "subset", tmp_path / "same"
    invoke("train-head", "--cache", cache16, "--out", subset, "--limit", "2", *TRAIN, check=True)
    proc = invoke("train-head", "--cache", cache16, "--out", same, "--train-split", "val", *TRAIN, check=True)
    assert "warning: train-head scores split val, the split the head is trained on" in proc.stderr
    assert "TRAIN=VAL" in proc.stdout
    for run, want in ((subset, ("train", "2", "6", "False")), (same, ("val", "3", "3", "True"))):
        for row in _csv(run / "summary.csv"):  # every row says what the head was trained on
            assert (row["train_split"], row["train_images"], row["train_split_images"], row["train_is_val"]) == want
            assert row["epoch"] == "2" and row["split"] == "val"
        for row in _csv(run / "metrics.csv"):  # and so does every epoch
            assert (row["train_split"], row["train_images"], row["train_split_images"]) == want[:3]
        prov = json.loads((run / "run.json").read_text())["provenance"]
        assert (prov["train_split"], str(prov["train_images"]), str(prov["train_is_val"])) == want[:2] + want[3:]
    out = tmp_path / "report"
    proc = invoke("report", subset, same, "--out", out, check=True)
    by_run = {r["run"]: r for r in _csv(out / "report.csv")}
    assert set(by_run) == {"head (2 ep) (train 2/6 img)", "head (2 ep) TRAIN=VAL"}
    assert by_run["head (2 ep) TRAIN=VAL"]["train_is_val"] == "True"
    assert by_run["head (2 ep) (train 2/6 img)"]["train_images"] == "2"
    text = (out / "report.md").read_text()
    assert "trained on split train, 2/6 images (subset)" in text and "TRAIN=VAL (scored on its training split)" in text
    assert "Runs marked TRAIN=VAL are scored on the split their head was trained on" in text
    assert "Runs marked TRAIN=VAL" in proc.stdout


def test_evaluate_on_the_heads_train_split_is_marked(cache16, tmp_path):
    run = tmp_path / "run"
    invoke("train-head", "--cache", cache16, "--out", run, *TRAIN, check=True)
    proc = invoke("evaluate", "--head", run / "head_epoch_2.pt", "--split", "train", "--device", "cpu",
                  "--num-workers", "0", "--quiet", check=True)
    assert "warning: evaluate scores split train, the split the head is trained on" in proc.stderr
    row = _csv(run / "eval-train-epoch2" / "summary.csv")[0]
    assert (row["split"], row["train_split"], row["train_is_val"], row["epoch"]) == ("train", "train", "True", "2")
    plain = invoke("evaluate", "--head", run / "head_epoch_2.pt", "--device", "cpu", "--num-workers", "0", "--quiet",
                   check=True)
    assert "warning" not in plain.stderr
    assert _csv(run / "eval-val-epoch2" / "summary.csv")[0]["train_is_val"] == "False"


@pytest.fixture
def growing_cache(synth_root, tmp_path):
    """train extracted with --limit 3 of the 6 images the data folder holds (val: 1 image); ``grow()`` adds the rest."""
    from samcache.pipeline.extract import extract

    cache = tmp_path / "grow.zarr"
    extract(extract_cfg(synth_root, cache, "train", limit=3), progress=False)
    extract(extract_cfg(synth_root, cache, "val", limit=1), progress=False)
    return cache, lambda: extract(extract_cfg(synth_root, cache, "train"), progress=False)


@pytest.mark.slow  # make test-slow: keeps make test within 6 minutes
def test_resume_after_the_train_split_grew_is_refused_unless_allowed(growing_cache, tmp_path):
    cache, grow = growing_cache
    run = tmp_path / "run"
    invoke("train-head", "--cache", cache, "--out", run, *TRAIN, check=True)
    first = json.loads((run / "run.json").read_text())
    grow()
    before = {k: v for k, v in snapshot(run).items() if k != "run.log"}
    refused = invoke("train-head", "--resume", run, "--epochs", "4")
    assert_one_line_error(refused, "the train set grew from 3 to 6 images of split train since epoch 2",
                          "--allow-train-growth")
    assert {k: v for k, v in snapshot(run).items() if k != "run.log"} == before  # nothing rewritten
    proc = invoke("train-head", "--resume", run, "--epochs", "4", "--allow-train-growth", check=True)
    assert "from epoch 3 on, the head trains on 6 images of split train" in proc.stderr
    assert [r["train_images"] for r in _csv(run / "metrics.csv")] == ["3", "3", "6", "6"]
    record = json.loads((run / "run.json").read_text())
    assert record["provenance"]["train_grew"] is True and record["train_images_over_epochs"] == 3 + 3 + 6 + 6
    assert "train set grew between epochs" in proc.stdout
    # the run's time is both sessions': the first as its own record had it, and the resumed one
    sessions = record["sessions"]
    assert len(sessions) == 2 and sessions[0]["seconds"] == first["seconds"]
    assert (sessions[1]["first_epoch"], sessions[1]["last_epoch"]) == (3, 4)
    assert record["seconds"] == pytest.approx(first["seconds"] + sessions[1]["seconds"], abs=2e-3)
    out = tmp_path / "report"
    invoke("report", run, "--out", out, "--quiet", check=True)
    text = (out / "report.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("head (4 ep) (1/3 img) (train grew)"))
    assert f"{record['seconds']:.1f}" in row.split()  # wall_s: every session
    assert_one_line_error(invoke("train-head", "--cache", cache, "--out", tmp_path / "new", "--allow-train-growth"),
                          "--allow-train-growth applies to --resume only")


def test_resume_of_a_missing_run_is_one_clear_line(tmp_path):
    assert_one_line_error(invoke("train-head", "--resume", tmp_path / "gone"),
                          f"no head run to resume at {tmp_path / 'gone'} (no such folder)")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(invoke("train-head", "--resume", tmp_path / "empty"),
                          f"no head run to resume at {tmp_path / 'empty'} (no run.json there)")
    assert not (tmp_path / "gone").exists()
