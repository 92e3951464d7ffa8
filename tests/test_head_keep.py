"""train-head --keep all|best|last: which checkpoints stay, the best epoch by val mIoU (recorded), and --resume
under every mode."""

import csv
import json

import pytest
import torch

import samcache.pipeline.train_head as train_head_module
from conftest import invoke

TRAIN = ["--epochs", "4", "--batch-size", "2", "--width", "8", "--num-workers", "0", "--preload", "ram",
         "--device", "cpu", "--visualize", "0", "--quiet"]
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


@pytest.mark.parametrize("keep,expected", [("all", [1, 2, 3, 4]), ("best", [2, 4]), ("last", [4])])
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
