"""Run folders as readers meet them: `report` restores the run that a killed --overwrite had set aside (the
files compared byte for byte); no lock file of a replaced nested run stays; no command writes its results
into the dataset a cache was extracted from; the small CLI texts a new user reads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import assert_one_line_error, invoke, snapshot

ZS = ("--num-workers", "0", "--visualize", "0", "--quiet")


def test_report_restores_the_run_a_killed_overwrite_was_replacing(cache16, tmp_path):
    run = tmp_path / "zs"
    invoke("zero-shot", "--cache", cache16, "--split", "val", "--out", run, *ZS, check=True)
    before = snapshot(run)
    # a zero-shot --overwrite killed (no cleanup runs) after it set the earlier run aside
    killed = subprocess.run([sys.executable, "-c", (
        "import os\nfrom samcache.pipeline.run_folder import run_folder\n"
        f"with run_folder({str(run)!r}, 'zero-shot', overwrite=True, started='now'):\n"
        "    open(os.path.join(" + repr(str(run)) + ", 'summary.csv'), 'w').write('half')\n"
        "    os._exit(9)")])
    assert killed.returncode == 9
    assert json.loads((run / "run.json").read_text())["status"] == "running"
    proc = invoke("report", run, "--out", tmp_path / "report")
    assert proc.returncode == 0, proc.stderr
    assert "restored" in proc.stderr
    assert snapshot(run) == before


@pytest.mark.slow  # two head trainings: make test-slow
def test_a_replaced_head_run_takes_its_nested_evaluation_lock_file_along(cache16, tmp_path):
    head = tmp_path / "head"
    args = ("--cache", cache16, "--epochs", "1", "--batch-size", "4", "--num-workers", "0", "--visualize", "0",
            "--quiet")
    invoke("train-head", "--out", head, *args, check=True)
    invoke("evaluate", "--head", head / "head_epoch_1.pt", "--cache", cache16, "--num-workers", "0", "--quiet",
           check=True)
    assert (head / "eval-val-epoch1").is_dir() and (head / ".eval-val-epoch1.lock").is_file()
    invoke("train-head", "--out", head, *args, "--overwrite", check=True)
    assert not (head / "eval-val-epoch1").exists() and not (head / ".eval-val-epoch1.lock").exists()


def test_no_run_or_export_is_written_inside_the_dataset(synth_root, cache16, tmp_path):
    inside = synth_root / "runs" / "zs"
    assert_one_line_error(invoke("zero-shot", "--cache", cache16, "--out", inside, *ZS), "inside the dataset")
    assert_one_line_error(invoke("clicks", "--cache", cache16, "--out", inside, *ZS), "inside the dataset")
    assert_one_line_error(invoke("export", cache16, synth_root / "c.h5"), "inside the dataset")
    assert not (synth_root / "runs").exists() and not (synth_root / "c.h5").exists()


def test_help_and_config_texts(cache16, tmp_path):
    assert ".h5" in " ".join(invoke("zero-shot", "--help").stdout.split())
    config = tmp_path / "c.yaml"
    config.write_text(f"cache: {cache16}\n")
    proc = invoke("info", "--config", config, check=True)
    assert str(cache16) in proc.stdout and "val" in proc.stdout
