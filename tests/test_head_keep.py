"""train-head --keep all|best|last: which checkpoints stay, the best epoch by val mIoU (recorded, and what
`evaluate --head RUN_DIR` takes), and --resume under every mode."""

import csv
import json

import pytest
import torch

import samcache.pipeline.train_head as train_head_module
from conftest import assert_one_line_error, invoke

TRAIN = ["--epochs", "4", "--batch-size", "2", "--width", "8", "--num-workers", "0", "--preload", "ram",
         "--device", "cpu", "--visualize", "0", "--quiet"]
EVAL = ["--device", "cpu", "--num-workers", "0", "--quiet"]
SCRIPT = [0.30, 0.50, 0.40, 0.20, 0.45]  # val mIoU of epochs 1-5: the best is epoch 2, not the last


@pytest.fixture
def scripted_miou(monkeypatch):
    """Training records these val mIoUs (the real per-class IoUs stay): the best epoch is known beforehand."""
    real = train_head_module.class_ious

    def scripted(conf, class_set):
        per_class, _ = real(conf, class_set)
        calls.append(conf)
        return per_class, SCRIPT[len(calls) - 1]

    calls = []  # cleared to start the script again for another run
    monkeypatch.setattr(train_head_module, "class_ious", scripted)
    return calls


def _metrics(run):
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _first_argmax(rows):
    values = [float(r["val_miou"]) for r in rows]
    k = max(range(len(values)), key=lambda i: (values[i], -i))
    return int(rows[k]["epoch"]), values[k]


def _kept(run):
    return sorted(int(p.stem.rsplit("_", 1)[1]) for p in run.glob("head_epoch_*.pt"))


@pytest.fixture(scope="module")
def straight_run(cache16, tmp_path_factory):
    """Five epochs in one go, every checkpoint kept: what a resumed run must reproduce."""
    out = tmp_path_factory.mktemp("keep") / "straight"
    invoke("train-head", "--cache", cache16, "--out", out, *TRAIN[:1], "5", *TRAIN[2:], check=True)
    return out


@pytest.mark.parametrize("keep,expected", [pytest.param("all", [1, 2, 3, 4], marks=pytest.mark.slow), pytest.param("best", [2, 4], marks=pytest.mark.slow),
                                           pytest.param("last", [4], marks=pytest.mark.slow)])
def test_keep_modes_record_the_best_epoch_and_resume(cache16, tmp_path, scripted_miou, straight_run, keep, expected):
    run = tmp_path / keep
    proc = invoke("train-head", "--cache", cache16, "--out", run, *TRAIN, "--keep", keep, check=True)
    rows = _metrics(run)
    best, best_miou = _first_argmax(rows)
    assert (best, best_miou) == (2, 0.5)  # the scripted val mIoUs reached metrics.csv
    want = {"all": {int(r["epoch"]) for r in rows}, "best": {best, 4}, "last": {4}}[keep]
    assert _kept(run) == sorted(want) == expected
    record = json.loads((run / "run.json").read_text())
    assert (record["best_epoch"], record["best_miou"], record["epoch"], record["keep"]) == (best, best_miou, 4, keep)
    assert record["checkpoints"] == [f"head_epoch_{e}.pt" for e in expected]
    with open(run / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    assert {r["epoch"] for r in summary} == {"4"}  # the IoUs are the last epoch's, and say so
    assert float(summary[-1]["iou"]) == pytest.approx(0.2, abs=1e-6) and float(rows[-1]["val_miou"]) == 0.2
    assert "IoUs of epoch 4, the last; best epoch 2 (val mIoU 0.5000); kept " in proc.stdout
    # --resume continues from the last epoch (its weights and Adam state) under every mode
    invoke("train-head", "--resume", run, "--epochs", "5", check=True)
    resumed = torch.load(run / "head_epoch_5.pt", weights_only=True)["model"]
    straight = torch.load(straight_run / "head_epoch_5.pt", weights_only=True)["model"]
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
    assert _kept(run) == {"all": [1, 2, 3, 4, 5], "best": [2, 5], "last": [5]}[keep]
    assert [int(r["epoch"]) for r in _metrics(run)] == [1, 2, 3, 4, 5]


@pytest.mark.slow  # make test-slow: keeps make test within 6 minutes
def test_evaluate_a_run_folder_takes_its_best_kept_epoch_or_its_last(cache16, tmp_path, scripted_miou):
    run = tmp_path / "run"
    invoke("train-head", "--cache", cache16, "--out", run, *TRAIN, "--keep", "best", check=True)
    proc = invoke("evaluate", "--head", run, *EVAL, check=True)  # no --cache: the head's own
    assert f"evaluated epoch 2 of {run}: its best by val mIoU (0.5000)" in proc.stdout
    explicit = invoke("evaluate", "--head", run / "head_epoch_2.pt", "--cache", cache16, "--out", tmp_path / "e2",
                      *EVAL, check=True)
    assert "evaluated" not in explicit.stdout
    assert _ious(run / "eval-val-epoch2") == _ious(tmp_path / "e2")  # the folder's best == that checkpoint
    record = json.loads((run / "eval-val-epoch2" / "run.json").read_text())
    assert (record["epoch"], record["chosen"], record["head"]) == (2, "best", str(run / "head_epoch_2.pt"))
    last = invoke("evaluate", "--head", run, "--epoch", "last", *EVAL, check=True)
    assert f"evaluated epoch 4 of {run}: its last" in last.stdout
    assert _ious(run / "eval-val-epoch4") != _ious(run / "eval-val-epoch2")
    only_last = tmp_path / "only-last"
    scripted_miou.clear()
    invoke("train-head", "--cache", cache16, "--out", only_last, *TRAIN, "--keep", "last", check=True)
    proc = invoke("evaluate", "--head", only_last, *EVAL, check=True)
    assert f"epoch 4 of {only_last}: its last (its best, epoch 2 with val mIoU 0.5000, was not kept)" in proc.stdout
    assert_one_line_error(invoke("evaluate", "--head", run / "head_epoch_2.pt", "--epoch", "last", *EVAL),
                          "--epoch last picks a checkpoint of a run folder")
    assert_one_line_error(invoke("evaluate", "--head", run / "eval-val-epoch2", *EVAL),
                          "is a folder but not a head run (it holds a samcache evaluate run)")


def _ious(run):
    """class -> IoU as summary.csv writes it (6 decimals; '' for a class absent from ground truth and prediction)."""
    with open(run / "summary.csv", newline="") as f:
        return {r["class"]: r["iou"] for r in csv.DictReader(f)}


def test_evaluate_defaults_to_the_cache_the_head_was_trained_on(cache16, tmp_path):
    import shutil

    here, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (here / "cache").mkdir(parents=True)
    elsewhere.mkdir()
    shutil.copytree(cache16, here / "cache" / "mine.zarr")
    invoke("train-head", "--cache", "cache/mine.zarr", "--out", "runs/head", *TRAIN[:1], "1", *TRAIN[2:],
           cwd=here, check=True)  # a relative --cache
    head = here / "runs" / "head" / "head_epoch_1.pt"
    proc = invoke("evaluate", "--head", head, "--out", "ev", *EVAL, cwd=elsewhere, check=True)
    record = json.loads((elsewhere / "ev" / "run.json").read_text())
    assert record["cache"] == str(here / "cache" / "mine.zarr"), proc.stdout
    invoke("evaluate", "--head", head, "--cache", cache16, "--out", tmp_path / "explicit", *EVAL, check=True)
    assert _ious(elsewhere / "ev") == _ious(tmp_path / "explicit")
    shutil.rmtree(here / "cache")
    assert_one_line_error(invoke("evaluate", "--head", head, "--out", "ev2", *EVAL, cwd=elsewhere),
                          f"no cache at {here / 'cache' / 'mine.zarr'}", "was trained on; pass --cache")
