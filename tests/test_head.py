"""Stage 2b: the head trains from the cache alone; our mIoU equals the official cityscapesScripts one."""

import shutil

import numpy as np
import pytest
import torch
import zarr
from torch.nn import functional as F

from conftest import assert_one_line_error, invoke
from samcache.cache.reader import open_cache
from samcache.data.labels import IGNORE, get_class_set
from samcache.evaluation.datasets import CacheHeadDataset
from samcache.pipeline.configs import HeadConfig
from samcache.pipeline.runs import read_csv
from samcache.pipeline.train_head import train_head

# measured on the session caches (6 train / 3 val synthetic images, tiny RANDOM weights, width 64):
# 8 epochs reach 0.530 (seed 0) and 0.509 (seed 1) mIoU; predicting the most frequent class gives < 0.1
MIN_MIOU_AFTER_8_EPOCHS = 0.45


def cfg(cache, out, **kw):
    base = dict(cache=str(cache), out=str(out), epochs=1, batch_size=2, width=32, num_workers=0, preload="ram",
                device="cpu", visualize=0, seed=0)
    base.update(kw)
    return HeadConfig(**base)


def test_dataset_yields_what_plain_zarr_holds(cache16):
    cs = get_class_set("seed5")
    ds = CacheHeadDataset(str(cache16), "train", cs)
    group = zarr.open_group(str(cache16), mode="r")["train"]
    for i in (0, len(ds) - 1):
        row, (emb,), target = ds[i]
        assert emb.dtype == torch.float16
        assert torch.equal(emb, torch.from_numpy(group["embeddings"][row]))
        h, w = (int(v) for v in group["input_sizes"][row])
        index = torch.from_numpy(cs.to_index(group["labels"][row]))[None, None].float()
        ref = F.interpolate(index, (h, w), mode="nearest-exact")[0, 0].to(torch.uint8)  # torch as reference
        assert torch.equal(target[:h, :w], ref)
        assert (target[h:, :] == IGNORE).all() and (target[:, w:] == IGNORE).all()
    _, _, labels = CacheHeadDataset(str(cache16), "val", "seed5", mode="eval")[0]  # a class-set name works too
    plain_val = zarr.open_group(str(cache16), mode="r")["val"]
    assert torch.equal(labels, torch.from_numpy(cs.to_index(plain_val["labels"][0])))


@pytest.mark.slow  # make test-slow: keeps make test within 6 minutes
def test_head_learns_well_above_a_constant_baseline(cache32, tmp_path):
    record = train_head(cfg(cache32, tmp_path, epochs=8, width=64), progress=False)
    val = open_cache(cache32).split("val")
    cs = get_class_set("seed5")
    gts = [cs.to_index(val.labels[r]) for r in range(len(val))]
    counts = np.bincount(np.concatenate([g[g != IGNORE] for g in gts]), minlength=cs.num_classes)
    constant = int(np.argmax(counts))
    # predicting ``constant`` everywhere: its IoU is its share of the scored pixels, every other present class 0
    ious = [counts[c] / counts.sum() if c == constant else (0.0 if counts[c] else np.nan) for c in cs.eval_indices]
    baseline = np.nanmean(ious)
    assert baseline < 0.1
    assert record["miou"] >= MIN_MIOU_AFTER_8_EPOCHS > baseline
    rows = read_csv(tmp_path / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])


@pytest.mark.parametrize("classes", ["seed5", "cityscapes19"])
def test_miou_equals_official_cityscapesscripts(cache32, synth_root, tmp_path, classes):
    record = train_head(cfg(cache32, tmp_path, epochs=2, classes=classes, save_predictions=True), progress=False)
    preds = sorted((tmp_path / "predictions").glob("*/*_labelIds.png"))
    assert len(preds) == 3
    theirs = _official(preds, synth_root, classes)
    ours = {r["class"]: r["iou"] for r in record["summary"]}
    for name, value in theirs.items():
        assert np.isnan(ours[name]) if np.isnan(value) else ours[name] == pytest.approx(value, abs=1e-6), name
    assert ours["mean"] == pytest.approx(np.nanmean(list(theirs.values())), abs=1e-6)


@pytest.mark.slow  # make test-slow: keeps make test within 6 minutes
def test_same_seed_same_weights_and_preload_modes_agree(cache32, tmp_path):
    train_head(cfg(cache32, tmp_path / "a", epochs=2, flip=True), progress=False)
    train_head(cfg(cache32, tmp_path / "b", epochs=2, flip=True), progress=False)
    train_head(cfg(cache32, tmp_path / "c", epochs=2, flip=True, preload="off", num_workers=1), progress=False)
    a, b, c = (torch.load(tmp_path / d / "head_epoch_2.pt", weights_only=False)["model"] for d in "abc")
    for k in a:
        assert torch.equal(a[k], b[k]), k
        assert torch.equal(a[k], c[k]), k  # DataLoader from Zarr == preloaded


@pytest.mark.slow  # make test's 6 minutes: heavy, and covered in part by faster checks
def test_resume_continues_without_repeating(cache32, tmp_path):
    train_head(cfg(cache32, tmp_path / "full", epochs=3), progress=False)
    train_head(cfg(cache32, tmp_path / "part", epochs=2), progress=False)
    proc = invoke("train-head", "--resume", tmp_path / "part", "--epochs", "3", check=True)
    assert "3 epochs (1 run now)" in proc.stdout
    assert [int(r["epoch"]) for r in read_csv(tmp_path / "part" / "metrics.csv")] == [1, 2, 3]
    full = torch.load(tmp_path / "full" / "head_epoch_3.pt", weights_only=False)["model"]
    resumed = torch.load(tmp_path / "part" / "head_epoch_3.pt", weights_only=False)["model"]
    assert all(torch.equal(full[k], resumed[k]) for k in full)


def test_training_opens_no_png_and_no_encoder(cache32, tmp_path, monkeypatch):
    import PIL.Image
    from segment_anything.modeling import ImageEncoderViT

    def forbidden(*a, **k):
        raise AssertionError("training must read the cache only")

    monkeypatch.setattr(PIL.Image, "open", forbidden)
    monkeypatch.setattr(ImageEncoderViT, "__init__", forbidden)
    record = train_head(cfg(cache32, tmp_path, preload="off"), progress=False)
    assert record["encoder_passes"] == 0


def _official(preds, synth_root, class_set):
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    gts = [synth_root / "gtFine" / "val" / p.parent.name / p.name.replace("_labelIds", "_gtFine_labelIds")
           for p in preds]
    args = official.args
    args.quiet, args.JSONOutput, args.evalInstLevelScore, args.evalPixelAccuracy = True, False, False, False
    result = official.evaluateImgLists([str(p) for p in preds], [str(g) for g in gts], args)
    return {n: result["classScores"][n] for n in get_class_set(class_set).eval_names}


def test_evaluate_equals_official_evaluation_and_checks_fingerprints(cache32, synth_root, tmp_path):
    train_head(cfg(cache32, tmp_path / "run", epochs=1, classes="cityscapes19"), progress=False)
    proc = invoke("evaluate", "--head", tmp_path / "run" / "head_epoch_1.pt", "--cache", cache32, "--device", "cpu",
                   "--num-workers", "1", "--save-predictions", check=True)
    out = tmp_path / "run" / "eval-val-epoch1"
    assert "RANDOM weights" in proc.stdout and (out / "config.yaml").is_file()
    ours = {r["class"]: r["iou"] for r in read_csv(out / "summary.csv")}
    theirs = _official(sorted((out / "predictions").glob("*/*_labelIds.png")), synth_root, "cityscapes19")
    for name, value in theirs.items():
        assert (ours[name] == "" if np.isnan(value) else float(ours[name]) == pytest.approx(value, abs=1e-6)), name
    other = tmp_path / "other.zarr"
    shutil.copytree(cache32, other)
    group = zarr.open_group(str(other), mode="a")["val"]
    group.attrs["fingerprint"] = {**group.attrs["fingerprint"], "random_seed": 99}
    proc = invoke("evaluate", "--head", tmp_path / "run" / "head_epoch_1.pt", "--cache", other)
    assert_one_line_error(proc, "head_epoch_1.pt was trained on", "seed 0", "seed 99")
    assert_one_line_error(invoke("evaluate", "--head", tmp_path / "nope.pt", "--cache", cache32),
                          "head checkpoint not found")


class _NotAllowed:
    """Anything weights_only=True refuses to unpickle (code could run from such a file)."""


def test_head_checkpoints_load_with_weights_only(cache32, tmp_path):
    from samcache.errors import SamcacheError
    from samcache.evaluation.heads import load_head

    train_head(cfg(cache32, tmp_path / "run", epochs=1), progress=False)
    ckpt = torch.load(tmp_path / "run" / "head_epoch_1.pt", weights_only=True)  # loads: only plain data
    torch.save({**ckpt, "extra": _NotAllowed()}, tmp_path / "evil.pt")
    with pytest.raises(SamcacheError, match="evil.pt is not a readable samcache head checkpoint"):
        load_head(tmp_path / "evil.pt", torch.device("cpu"))


def test_overlays_and_outputs_say_random_weights(cache32, tmp_path, monkeypatch):
    import samcache.evaluation.heads as evaluate_module

    titles = []
    monkeypatch.setattr(evaluate_module, "save_overlay", lambda path, *a, **k: titles.append(a[-1]))
    train_head(cfg(cache32, tmp_path / "run", epochs=1, visualize=2), progress=False)
    assert len(titles) == 2 and all("RANDOM weights" in t for t in titles)


def test_preload_auto_judges_available_memory(monkeypatch):
    import psutil

    from samcache.evaluation.training_data import choose_preload

    class Memory:
        available = 10 * 2**30
        free = 1 * 2**20  # page cache counts as available, not free

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory())
    assert choose_preload("auto", 2 * 2**30, torch.device("cpu")) == "ram"
    assert choose_preload("auto", 6 * 2**30, torch.device("cpu")) == "off"
    assert choose_preload("off", 1, torch.device("cpu")) == "off"


@pytest.mark.parametrize("command", ["train-head", "evaluate"])
def test_help(command):
    assert "Usage: samcache " + command in invoke(command, "--help", check=True).stdout


def test_diverged_training_fails_with_one_line_and_keeps_no_nan_checkpoint(cache16, tmp_path):
    out = tmp_path / "head"
    proc = invoke("train-head", "--cache", cache16, "--out", out, "--lr", "1e30", "--epochs", "2", "--width", "8",
                  "--batch-size", "3", "--num-workers", "0", "--preload", "ram", "--device", "cpu", "--visualize", "0")
    assert_one_line_error(proc, "training diverged in epoch 1", "weights not finite", "lower --lr")
    assert not out.exists()  # nothing kept: no NaN checkpoint, no run that a report could read
