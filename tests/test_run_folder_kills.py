"""Run folders under kills and concurrency: locked as splits are; a killed run is recognised; a killed
--overwrite's earlier run comes back on the next invocation."""

import json
import subprocess
import sys
import textwrap

from conftest import assert_one_line_error, invoke, snapshot
from samcache.pipeline.run_folder import folder_lock, recover, run_folder

ZS = ["--checkpoint", "", "--device", "cpu", "--num-workers", "0", "--visualize", "0"]


def fake_run(out, stage="zero-shot"):
    """A finished run as the run-folder layer sees it (its files and record)."""
    with run_folder(out, stage) as folder:
        (out / "summary.csv").write_text("class,iou\nmean,0.5\n")
        folder.record({"stage": stage, "status": "complete"})
        folder.commit()


def killed(out, overwrite: bool, stage="zero-shot"):
    """A command killed with SIGKILL after writing a file (no cleanup runs)."""
    code = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from samcache.pipeline.run_folder import run_folder
        with run_folder(Path({str(out)!r}), {stage!r}, overwrite={overwrite}) as f:
            (Path({str(out)!r}) / "summary.csv").write_text("half")
            (Path({str(out)!r}) / "config.yaml").write_text("x: 1")
            os.kill(os.getpid(), 9)
    """)
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9


def test_killed_overwrite_is_restored_by_the_next_command_and_never_deleted(cache16, tmp_path):
    out = tmp_path / "run"
    fake_run(out)
    (out / "notes.txt").write_text("the user's")
    before = snapshot(out)
    killed(out, overwrite=True)
    assert (out / ".samcache-replaced").is_dir()
    proc = invoke("zero-shot", "--cache", cache16, "--out", out, *ZS)  # the next invocation, no --overwrite
    assert_one_line_error(proc, "already holds a samcache zero-shot run; pass --overwrite")
    assert "is restored" in proc.stderr
    assert snapshot(out) == before  # the earlier run is back, the killed one's files are gone
    killed(out, overwrite=True)
    killed(out, overwrite=True)  # a second killed --overwrite must not delete the first's set-aside run
    with folder_lock(out):
        recover(out)
    assert snapshot(out) == before


def test_killed_fresh_run_is_recognised_and_a_plain_rerun_proceeds(cache16, tmp_path):
    out = tmp_path / "run"
    killed(out, overwrite=False)
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    proc = invoke("zero-shot", "--cache", cache16, "--out", out, *ZS, "--limit", "1")
    assert proc.returncode == 0, proc.stderr
    assert "interrupted before its first result" in proc.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_interrupted_head_run_is_offered_resume_and_others_are_named_interrupted(cache16, tmp_path):
    out = tmp_path / "head"
    fake_run(out, "head")
    record = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**record, "status": "running", "epochs_done": 1}))
    proc = invoke("train-head", "--cache", cache16, "--out", out, "--epochs", "1")
    assert_one_line_error(proc, "interrupted after epoch 1", f"--resume {out}")
    other = tmp_path / "zs"
    fake_run(other)
    record = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**record, "status": "running"}))
    proc = invoke("zero-shot", "--cache", cache16, "--out", other, *ZS)
    assert_one_line_error(proc, "interrupted before it finished", "--overwrite")


def test_one_command_per_run_folder(cache16, tmp_path):
    from samcache.pipeline.configs import HeadConfig
    from samcache.pipeline.train_head import train_head

    head = tmp_path / "head"
    train_head(HeadConfig(cache=str(cache16), out=str(head), epochs=1, batch_size=3, width=8, num_workers=0,
                          preload="ram", device="cpu", visualize=0), progress=False)
    fresh = tmp_path / "fresh"
    with folder_lock(head), folder_lock(fresh):  # another train-head --resume / a fresh run being created
        resumed = invoke("train-head", "--resume", head, "--epochs", "3")
        second = invoke("train-head", "--cache", cache16, "--out", fresh)
    assert_one_line_error(resumed, "in use by another samcache command")
    assert_one_line_error(second, "in use by another samcache command")
