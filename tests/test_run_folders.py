"""Run folders and checkpoints: never overwritten by accident, never half-written, always resumable."""

import json
import shutil

import pytest
import torch
import yaml

from conftest import assert_one_line_error, invoke, snapshot
from samcache.pipeline.configs import HeadConfig, ZeroShotConfig
from samcache.pipeline.runs import read_csv
from samcache.pipeline.train_head import train_head
from samcache.pipeline.zero_shot import run_zero_shot

HEAD = ["--epochs", "2", "--batch-size", "2", "--width", "16", "--num-workers", "0", "--preload", "ram",
        "--device", "cpu", "--visualize", "0"]


def head_cfg(cache, out, **kw):
    base = dict(cache=str(cache), out=str(out), epochs=2, batch_size=2, width=16, num_workers=0, preload="ram",
                device="cpu", visualize=0)
    return HeadConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def head_run(cache16, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "head"
    train_head(head_cfg(cache16, out), progress=False)
    return out


def test_killed_checkpoint_write_leaves_the_previous_file(cache16, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_save = torch.save

    def dies_midway(obj, path, *a, **k):
        if str(path).endswith(".tmp") and "epoch" in str(obj.get("config", {})) and obj["epoch"] == 2:
            with open(path, "wb") as f:
                f.write(b"PK\x03\x04 half a zip")
            raise KeyboardInterrupt  # a kill during torch.save
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        train_head(head_cfg(cache16, out), progress=False)
    assert sorted(p.name for p in out.glob("head_epoch_*")) == ["head_epoch_1.pt"]
    assert not list(out.glob(".*.tmp"))
    monkeypatch.setattr(torch, "save", real_save)
    proc = invoke("train-head", "--resume", out, check=True)
    assert "2 epochs (1 run now)" in proc.stdout


def test_damaged_checkpoint_is_named_and_the_previous_epoch_resumes(cache16, tmp_path):
    out = tmp_path / "run"
    train_head(head_cfg(cache16, out, epochs=2), progress=False)
    (out / "head_epoch_2.pt").write_bytes(b"")  # what a kill during a non-atomic torch.save left
    proc = invoke("train-head", "--resume", out, "--epochs", "3", check=True)
    assert f"warning: {out / 'head_epoch_2.pt'} is damaged" in proc.stderr
    assert "3 epochs (2 run now)" in proc.stdout
    assert [int(r["epoch"]) for r in read_csv(out / "metrics.csv")] == [1, 2, 3]
    torch.load(out / "head_epoch_2.pt", weights_only=True)  # rewritten whole


def test_zero_shot_into_a_head_run_is_refused(head_run, cache16, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(head_run, run)
    before = snapshot(run)
    proc = invoke("zero-shot", "--cache", cache16, "--out", run, "--device", "cpu")
    assert_one_line_error(proc, "already holds a samcache head run", "--overwrite")
    assert snapshot(run) == before
    resumed = invoke("train-head", "--resume", run, "--epochs", "3")
    assert resumed.returncode == 0, resumed.stderr  # the run's own settings are intact
    assert "lr: 0.001" in (run / "config.yaml").read_text() and "width: 16" in (run / "config.yaml").read_text()


def test_rerun_without_resume_is_refused_and_overwrite_clears_stale_checkpoints(cache16, tmp_path):
    out = tmp_path / "run"
    train_head(head_cfg(cache16, out, epochs=3), progress=False)
    (out / "notes.txt").write_text("mine")
    assert_one_line_error(invoke("train-head", "--cache", cache16, "--out", out, *HEAD),
                          "already holds a samcache head run", f"--resume {out}")
    proc = invoke("train-head", "--cache", cache16, "--out", out, *HEAD, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.glob("head_epoch_*")) == ["head_epoch_1.pt", "head_epoch_2.pt"]
    assert (out / "notes.txt").read_text() == "mine"  # not samcache's: kept


def test_a_folder_that_is_not_a_run_is_never_touched(cache16, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("precious")
    for flags in ([], ["--overwrite"]):
        proc = invoke("zero-shot", "--cache", cache16, "--out", folder, "--device", "cpu", *flags)
        assert_one_line_error(proc, "not empty and is not a samcache run folder")
    assert snapshot(folder) == {"thesis.tex": b"precious"}


def test_failure_before_the_first_result_leaves_no_folder(cache16, tmp_path, monkeypatch):
    assert_one_line_error(invoke("zero-shot", "--cache", cache16, "--split", "test", "--out", tmp_path / "a"),
                          "no split 'test'")
    assert not (tmp_path / "a").exists()
    import samcache.pipeline.zero_shot as zs

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(zs, "decode_batch", interrupted)
    proc = invoke("zero-shot", "--cache", cache16, "--out", tmp_path / "b", "--device", "cpu", "--num-workers", "0")
    assert proc.returncode == 130 and "zero-shot does not resume" in proc.stderr
    assert not (tmp_path / "b").exists()
    (tmp_path / "c").mkdir()  # an empty folder given as --out stays, empty
    invoke("zero-shot", "--cache", cache16, "--out", tmp_path / "c", "--device", "cpu")
    assert list((tmp_path / "c").iterdir()) == []


def test_resume_checks(head_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(head_run, run)
    before = snapshot(run)
    assert_one_line_error(invoke("train-head", "--resume", run, "--classes", "cityscapes19"),
                          "trained with classes='seed5'", "--classes 'cityscapes19' would change it")
    assert_one_line_error(invoke("train-head", "--resume", run, "--epochs", "1"),
                          "--epochs 1 is fewer than the 2 epochs already run")
    assert_one_line_error(invoke("train-head", "--resume", run, "--lr", "0.1"), "lr=0.001")
    assert snapshot(run) == before  # the run is not rewritten (it was, as "2 ep" with epochs_run -2)
    assert_one_line_error(invoke("train-head", "--resume", tmp_path / "nothing"),
                          f"no head run to resume at {tmp_path / 'nothing'} (no such folder)")
    assert_one_line_error(invoke("train-head", "--resume", run, "--epochs", "2"), "finished all 2 epochs")
    assert snapshot(run) == before  # a finished run resumed with its own --epochs is left as it is


def test_resume_is_never_taken_from_a_file(head_run, tmp_path):
    """A resumed run's config.yaml, given to --config, must start a new run, not extend the old one."""
    run = tmp_path / "run"
    shutil.copytree(head_run, run)
    (run / ".head_epoch_3.pt.x1y2.tmp").write_bytes(b"half a checkpoint")  # a write killed before its rename
    invoke("train-head", "--resume", run, "--epochs", "3", check=True)
    assert not (run / ".head_epoch_3.pt.x1y2.tmp").exists() and (run / "head_epoch_3.pt").is_file()
    assert yaml.safe_load((run / "config.yaml").read_text())["resume"] is None
    before = snapshot(run)
    new = tmp_path / "new"
    invoke("train-head", "--config", run / "config.yaml", "--out", new, "--epochs", "1", check=True)
    assert (new / "head_epoch_1.pt").is_file() and snapshot(run) == before
    (tmp_path / "r.yaml").write_text(f"resume: {run}\nepochs: 4\n")
    assert_one_line_error(invoke("train-head", "--config", tmp_path / "r.yaml"), "command-line flag only")
    assert snapshot(run) == before


def test_report_refuses_an_empty_or_foreign_summary(head_run, tmp_path):
    for name, text in (("empty", ""), ("foreign", "foo,bar\n1,2\n")):
        run = tmp_path / name
        shutil.copytree(head_run, run)
        (run / "summary.csv").write_text(text)
        assert_one_line_error(invoke("report", run, head_run, "--out", tmp_path / "r"), "holds no head results")
        assert not (tmp_path / "r").exists()


@pytest.mark.slow  # make test-slow: keeps make test within 6 minutes
def test_report_gives_every_run_its_own_column(cache16, head_run, tmp_path):
    other_head = tmp_path / "head-seed1"
    train_head(head_cfg(cache16, other_head, seed=1), progress=False)
    for s in (0, 1):
        run_zero_shot(ZeroShotConfig(cache=str(cache16), out=str(tmp_path / f"zs{s}"), seed=s, device="cpu",
                                     visualize=0, num_workers=0), progress=False)
    head19 = tmp_path / "head19"
    train_head(head_cfg(cache16, head19, classes="cityscapes19", epochs=1), progress=False)
    evaluation = tmp_path / "eval"
    invoke("evaluate", "--head", head_run / "head_epoch_2.pt", "--cache", cache16, "--out", evaluation,
           "--device", "cpu", "--num-workers", "0", check=True)
    proc = invoke("report", head_run, other_head, tmp_path / "zs0", tmp_path / "zs1", head19, evaluation,
                  "--out", tmp_path / "report", "--gallery", "1", check=True)
    page = (tmp_path / "report" / "report.html").read_text()  # the gallery shows one class set, names the other
    assert "head (1 ep): split val, class set cityscapes19 (the gallery shows split val, class set seed5)" in page
    rows = read_csv(tmp_path / "report" / "report.csv")
    runs = list(dict.fromkeys(r["run"] for r in rows))
    assert runs == ["head (2 ep) (head)", "head (2 ep) (head-seed1)", "zero-shot random/best-score (zs0)",
                    "zero-shot random/best-score (zs1)", "evaluate epoch 2 on val", "head (1 ep)"]
    value = {(r["run"], r["class_set"], r["class"], r["metric"]): r["value"] for r in rows}
    for run, folder, column, metric in [(runs[0], head_run, "iou", "semantic_iou"),
                                        (runs[1], other_head, "iou", "semantic_iou"),
                                        (runs[2], tmp_path / "zs0", "iou_dataset", "prompted_iou"),
                                        (runs[3], tmp_path / "zs1", "iou_semantic", "semantic_iou"),
                                        (runs[4], evaluation, "iou", "semantic_iou")]:
        for r in read_csv(folder / "summary.csv"):
            assert value[(run, "seed5", r["class"], metric)] == r[column], (run, r["class"])
    assert value[(runs[0], "seed5", "road", "semantic_iou")] != value[(runs[1], "seed5", "road", "semantic_iou")]
    city = [r for r in rows if r["class_set"] == "cityscapes19"]
    assert {r["run"] for r in city} == {"head (1 ep)"} and len(city) == 20  # its own table: 19 classes + mean
    assert "class set seed5" in proc.stdout and "class set cityscapes19" in proc.stdout


@pytest.mark.parametrize("content", ["{not json", '{"stage": "head", "status": "complete"'])
def test_corrupt_run_record_is_one_line(head_run, tmp_path, content):
    run = tmp_path / "run"
    shutil.copytree(head_run, run)
    (run / "run.json").write_text(content)
    assert_one_line_error(invoke("report", run, "--out", tmp_path / "r"), "run.json is unreadable or corrupt")
    assert not (tmp_path / "r").exists()


def test_unfinished_run_is_named_not_dropped(head_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(head_run, run)
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "status": "running"}))
    assert_one_line_error(invoke("report", run, head_run, "--out", tmp_path / "r"),
                          "unfinished head run", f"--resume {run}")


def test_overwrite_touches_only_the_runs_own_files_and_a_failure_puts_everything_back(cache16, head_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(head_run, run)
    mine = {"analysis.ipynb": b"{}", "visualizations/my_figure.png": b"png", "predictions/notes.txt": b"n",
            "head_epoch_99_mine.pt": b"pt"}
    for name, data in mine.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(data)
    before = snapshot(run)
    failed = invoke("train-head", "--cache", cache16, "--out", run, *HEAD, "--overwrite", "--train-split", "nosuch")
    assert_one_line_error(failed, "no split 'nosuch'")
    assert snapshot(run) == before  # the replaced run is restored, and the user's files never moved
    invoke("train-head", "--cache", cache16, "--out", run, *HEAD, "--overwrite", "--epochs", "1", check=True)
    after = snapshot(run)
    assert all(after[name] == data for name, data in mine.items())
    assert "head_epoch_2.pt" not in after and "head_epoch_1.pt" in after  # the old run's second epoch is gone
    record = json.loads((run / "run.json").read_text())
    assert "head_epoch_1.pt" in record["outputs"] and "analysis.ipynb" not in record["outputs"]


def test_out_may_not_overlap_what_the_command_reads(cache16, head_run, tmp_path):
    assert_one_line_error(invoke("report", head_run, "--out", head_run, "--overwrite"), "which this command reads")
    assert_one_line_error(invoke("evaluate", "--head", head_run / "head_epoch_2.pt", "--cache", cache16, "--out",
                                 head_run, "--overwrite"), "which this command reads")
    before = sorted(p.name for p in cache16.iterdir())
    assert_one_line_error(invoke("zero-shot", "--cache", cache16, "--out", cache16 / "runs"),
                          "which this command reads")
    assert sorted(p.name for p in cache16.iterdir()) == before  # not even a lock file left in the cache
    assert (head_run / "head_epoch_2.pt").is_file()
    assert_one_line_error(invoke("train-head", "--resume", head_run, "--out", tmp_path / "elsewhere"),
                          "continues", "in place")


def test_a_run_that_leaves_no_folder_leaves_no_lock_file(tmp_path):
    from samcache.pipeline.run_folder import run_folder

    with pytest.raises(RuntimeError):
        with run_folder(tmp_path / "failed", "zero-shot"):
            raise RuntimeError("fails before its first result")
    with run_folder(tmp_path / "kept", "zero-shot") as folder:
        folder.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".kept.lock", "kept"]


def test_saved_config_is_portable_records_the_device_and_every_run_has_a_log(cache16, tmp_path):
    import shutil

    import yaml

    here = tmp_path / "project"
    (here / "cache").mkdir(parents=True)
    shutil.copytree(cache16, here / "cache" / "c.zarr")
    invoke("zero-shot", "--cache", "cache/c.zarr", "--out", "runs/zs", "--limit", "1", "--device", "auto",
           "--num-workers", "0", "--visualize", "0", cwd=here, check=True)
    saved = yaml.safe_load((here / "runs" / "zs" / "config.yaml").read_text())
    assert saved["cache"] == str(here / "cache" / "c.zarr") and saved["out"] == str(here / "runs" / "zs")
    assert saved["device"] == "cpu"  # auto, resolved: the device the run used
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    invoke("zero-shot", "--config", here / "runs" / "zs" / "config.yaml", "--out", "again", cwd=elsewhere, check=True)
    assert (elsewhere / "again" / "summary.csv").is_file()
    log = (here / "runs" / "zs" / "run.log").read_text()
    assert "zero-shot started: samcache" in log and "status complete" in log
    assert "run.log" in json.loads((here / "runs" / "zs" / "run.json").read_text())["outputs"]
