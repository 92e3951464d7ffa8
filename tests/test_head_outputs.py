"""What a head run leaves for people to look at: a TensorBoard log that reads back (with TensorBoard's own reader)
as metrics.csv and continues on --resume, training_curves.png, and each val image's IoU (per_image.csv) as
numpy counts it from the saved predictions and the dataset's own ground truth files."""

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from cityscapesscripts.helpers.labels import labels as CS_LABELS
from cityscapesscripts.helpers.labels import name2label
from PIL import Image

from conftest import invoke
from samcache.pipeline.runs import read_csv

HEAD = ["--batch-size", "2", "--width", "16", "--num-workers", "0", "--preload", "ram", "--device", "cpu",
        "--visualize", "0"]


def tensorboard_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag as TensorBoard shows it: (step, value) in step order, after its purge of the events a
    killed session logged past the point a later session restarted from."""
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                            reason="tensorboard is not installed (pip install -e '.[dev]')")
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_log_is_metrics(run: Path) -> dict:
    """Every epoch's val mIoU and class IoUs in the log equal metrics.csv's, one event per epoch."""
    scalars = tensorboard_scalars(run / "tensorboard")
    metrics = read_csv(run / "metrics.csv")
    assert [int(v) for _, v in scalars["epoch"]] == [int(r["epoch"]) for r in metrics]
    for key in [k for k in metrics[0] if k == "val_miou" or k.startswith("iou_")]:
        tag = "val/miou" if key == "val_miou" else f"val/iou/{key[4:]}"
        want = [float(r[key]) for r in metrics if r[key] and math.isfinite(float(r[key]))]
        assert [v for _, v in scalars[tag]] == pytest.approx(want, abs=1e-6), tag
    steps = [s for s, _ in scalars["train/loss"]]
    assert steps == list(range(1, len(steps) + 1))  # one loss per optimizer step, never twice
    assert [s for s, _ in scalars["val/miou"]] == [s for s, _ in scalars["epoch"]]
    return scalars


@pytest.fixture(scope="module")
def head_run(cache16, tmp_path_factory) -> Path:
    """One epoch of a small head on the 6 train images of cache16 (3 steps of 2 images)."""
    run = tmp_path_factory.mktemp("head") / "head"
    invoke("train-head", "--cache", cache16, "--epochs", "1", "--out", run, *HEAD, check=True)
    return run


def test_tensorboard_log_reads_back_as_metrics_and_a_resume_continues_it(head_run, tmp_path):
    run = tmp_path / "head"
    shutil.copytree(head_run, run)
    first = assert_log_is_metrics(run)
    assert len(first["train/loss"]) == 3
    assert Image.open(run / "training_curves.png").size[0] > 400
    # a session killed after logging epoch 2 but before its checkpoint: what it logged must not count
    from tensorboardX import SummaryWriter

    killed = SummaryWriter(str(tmp_path / "killed"))
    for step in range(4, 7):
        killed.add_scalar("train/loss", 99.0, step)
    killed.add_scalar("val/miou", 0.999, 6)
    killed.add_scalar("epoch", 2, 6)
    killed.close()
    (first_file,) = (run / "tensorboard").iterdir()
    (orphan,) = (tmp_path / "killed").iterdir()
    shutil.move(orphan, run / "tensorboard" / (first_file.name + ".killed"))  # read right after the first session

    invoke("train-head", "--resume", run, "--epochs", "2", check=True)
    scalars = assert_log_is_metrics(run)
    assert len(scalars["train/loss"]) == 2 * 3 and 99.0 not in [v for _, v in scalars["train/loss"]]
    assert scalars["train/loss"][:3] == first["train/loss"]
    assert [v for _, v in scalars["train/lr"]] == pytest.approx([1e-3] * 6)
    assert len(list((run / "tensorboard").iterdir())) == 3  # a new file per session, in the same folder


def _counts(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray, label_id: int) -> tuple[int, int]:
    p, g = (pred == label_id) & valid, (gt == label_id) & valid
    return int((p & g).sum()), int((p | g).sum())


def test_evaluate_writes_each_images_iou_as_numpy_counts_it(head_run, synth_root, tmp_path):
    run = head_run
    evaluation = tmp_path / "eval"
    invoke("evaluate", "--head", run, "--save-predictions", "--num-workers", "0", "--device", "cpu", "--out",
           evaluation, check=True)
    void = [lab.id for lab in CS_LABELS if lab.ignoreInEval and 0 <= lab.id < 256]
    for folder in (evaluation, run):  # evaluate's, and train-head's of its last epoch
        rows = read_csv(folder / "per_image.csv")
        ids = sorted({r["image_id"] for r in rows})
        assert len(ids) == 3
        for image_id in ids:
            city = image_id.rsplit("_", 2)[0]
            gt = np.asarray(Image.open(synth_root / "gtFine" / "val" / city / f"{image_id}_gtFine_labelIds.png"))
            pred = np.asarray(Image.open(evaluation / "predictions" / city / f"{image_id}_labelIds.png"))
            valid = ~np.isin(gt, void)
            want = {}
            for name in ("road", "sidewalk", "building", "person", "car"):
                inter, union = _counts(pred, gt, valid, name2label[name].id)
                if union:
                    want[name] = (inter, union)
            got = {r["class"]: (int(r["intersection"]), int(r["union"])) for r in rows if r["image_id"] == image_id}
            assert got == want, (folder.name, image_id)
            for r in rows:
                if r["image_id"] == image_id:
                    assert float(r["iou"]) == pytest.approx(want[r["class"]][0] / want[r["class"]][1], abs=1e-6)
    assert os.path.getsize(run / "training_curves.png") > 0
