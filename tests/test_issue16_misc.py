"""Issue 16: synth never rewrites silently; pictures never decide a run; divergence; seeds; YAML keys; --help."""

import json

import numpy as np
import pytest
from PIL import Image

from conftest import assert_one_line_error, invoke, snapshot


def test_synth_refuses_other_settings_without_overwrite_and_never_mixes_sizes(tmp_path):
    data = tmp_path / "data"
    invoke("synth", data, "--train", "2", "--val", "1", "--size", "64x32", check=True)
    before = snapshot(data)
    proc = invoke("synth", data, "--train", "1", "--size", "96x48")
    assert_one_line_error(proc, "holds synthetic data (train 2, val 1 at 64x32", "--overwrite")
    assert snapshot(data) == before
    again = invoke("synth", data, "--train", "2", "--val", "1", "--size", "64x32")  # the same: completes, no change
    assert again.returncode == 0 and snapshot(data) == before
    invoke("synth", data, "--train", "1", "--val", "0", "--size", "96x48", "--overwrite", check=True)
    pngs = sorted(data.rglob("*.png"))
    assert pngs and {Image.open(p).size for p in pngs} == {(96, 48)}
    assert not list((data / "leftImg8bit").glob("val/*/*.png"))
    assert json.loads((data / "samcache-synth.json").read_text())["size"] == [96, 48]


def test_a_picture_that_cannot_be_drawn_is_skipped_and_the_run_kept(cache16, tmp_path):
    import shutil

    import zarr

    from samcache.data.synth import write_synthetic
    from samcache.evaluation.visualize import save_click_overlay

    data = tmp_path / "data"  # the data changed since extraction: other sizes
    write_synthetic(data, {"val": 3}, size=(64, 32), seed=0, progress=False)
    cache = tmp_path / "c.zarr"
    shutil.copytree(cache16, cache)
    zarr.open_group(str(cache), mode="r+")["val"].attrs["data_root"] = str(data)
    out = tmp_path / "zs"
    proc = invoke("zero-shot", "--cache", cache, "--out", out, "--device", "cpu", "--num-workers", "0",
                  "--visualize", "1", "--limit", "1")
    assert proc.returncode == 0, proc.stderr
    assert "picture" in proc.stderr and "skipped" in proc.stderr and "64x32" in proc.stderr
    assert " on 1 image in " in proc.stdout and "1 images" not in proc.stdout
    assert (out / "summary.csv").is_file() and json.loads((out / "run.json").read_text())["status"] == "complete"
    mask = np.zeros((256, 512), bool)
    mask[10:40, 10:40] = True
    image = np.zeros((32, 64, 3), np.uint8)
    with pytest.warns(Warning, match="skipped"):
        assert save_click_overlay(tmp_path / "c.png", image, mask, mask, [(20, 20, 1)], [1.0], "t") is False
    assert not (tmp_path / "c.png").exists()


def test_diverged_training_fails_with_one_line_and_keeps_no_nan_checkpoint(cache16, tmp_path):
    out = tmp_path / "head"
    proc = invoke("train-head", "--cache", cache16, "--out", out, "--lr", "1e30", "--epochs", "2", "--width", "8",
                  "--batch-size", "3", "--num-workers", "0", "--preload", "ram", "--device", "cpu", "--visualize", "0")
    assert_one_line_error(proc, "training diverged in epoch 1", "weights not finite", "lower --lr")
    assert not out.exists()  # nothing kept: no NaN checkpoint, no run that a report could read


@pytest.mark.parametrize("command, flag", [("extract", "--seed"), ("zero-shot", "--seed"), ("clicks", "--seed"),
                                           ("train-head", "--seed"), ("synth", "--seed"), ("demo", "--seed")])
def test_seeds_are_bounded_alike_in_every_command(command, flag, tmp_path):
    args = [tmp_path / "d"] if command == "synth" else []
    proc = invoke(command, *args, flag, str(2**64))
    assert_one_line_error(proc, "--seed", "less than or equal to 4294967295")


def test_yaml_seed_is_bounded_and_duplicate_keys_are_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(f"train_head:\n  seed: {2**64}\n")
    assert_one_line_error(invoke("train-head", "--config", big), "train_head.seed", "4294967295")
    dup = tmp_path / "dup.yaml"
    dup.write_text("cache: a.zarr\ntrain_head:\n  epochs: ten\ntrain_head:\n  epochs: 3\n")
    assert_one_line_error(invoke("train-head", "--config", dup), "duplicate key 'train_head' on line 4")
    inner = tmp_path / "inner.yaml"
    inner.write_text("zero_shot:\n  seed: 1\n  seed: 2\n")
    assert_one_line_error(invoke("zero-shot", "--config", inner), "duplicate key 'seed' on line 3")


def test_help_explains_prompts_checkpoints_runs_arguments_and_bounds():
    help_of = {c: " ".join(invoke(c, "--help", check=True).stdout.split()) for c in
               ("zero-shot", "extract", "report", "export", "import", "train-head", "evaluate", "clicks")}
    assert "per-instance: one center per" in help_of["zero-shot"] and "box: each class" in help_of["zero-shot"]
    assert "sam2.1_hiera_*.pt" in help_of["extract"] and "SAM 2.1 .pt" in help_of["zero-shot"]
    assert "clicks" in help_of["report"].split("Options")[0]
    assert "CACHE is the Zarr cache" in help_of["export"] and "H5 is a file" in help_of["import"]
    for command in ("extract", "train-head", "evaluate"):
        text = help_of[command]
        assert "--batch-size INTEGER" in text and "<=4096]" in text.split("--batch-size")[1].split("--")[0], command
        assert "0<=x<=64]" in text.split("--num-workers")[1].split("--")[0], command
    assert "<=100000]" in help_of["train-head"].split("--epochs")[1][:150]


def test_no_evaluated_class_is_one_true_error_in_zero_shot_and_clicks(cache16, tmp_path):
    import shutil

    import zarr

    cache = tmp_path / "c.zarr"
    shutil.copytree(cache16, cache)
    val = zarr.open_group(str(cache), mode="r+")["val"]
    val["labels"][:] = 0  # unlabeled everywhere
    val["instances"][:] = 0
    common = ["--cache", cache, "--device", "cpu", "--num-workers", "0", "--visualize", "0", "--limit", "1"]
    for command in ("zero-shot", "clicks"):
        proc = invoke(command, *common, "--out", tmp_path / command)
        line = assert_one_line_error(proc, "nothing to score", "evaluated class of class set seed5", "--classes")
        assert "min-area" not in line
        assert not (tmp_path / command).exists()


def test_clicks_progress_bar_counts_an_image_once_it_is_processed(cache16, tmp_path, monkeypatch):
    import samcache.pipeline.clicks as clicks
    from samcache.pipeline.configs import ClicksConfig

    seen = []
    real_batch, real_tqdm = clicks.run_batch, clicks.tqdm

    class Bar(real_tqdm):
        pass

    bars = []
    monkeypatch.setattr(clicks, "tqdm", lambda *a, **k: bars.append(Bar(*a, **{**k, "disable": False})) or bars[-1])

    def run_batch(*args, **kwargs):
        seen.append(bars[-1].n)  # images the bar says are done when this batch's objects start
        yield from real_batch(*args, **kwargs)

    monkeypatch.setattr(clicks, "run_batch", run_batch)
    clicks.run_clicks(ClicksConfig(cache=str(cache16), out=str(tmp_path / "c"), max_clicks=1, limit=2, visualize=0,
                                   num_workers=0, device="cpu"), progress=False)
    assert seen == [0, 1] and bars[-1].n == 2


def test_demo_with_a_checkpoint_and_model_type_auto_detects_the_type(vit_b_checkpoint, tmp_path):
    from samcache.errors import SamcacheError
    from samcache.pipeline.configs import DemoConfig
    from samcache.pipeline.demo import resolve_model

    path, _ = vit_b_checkpoint
    assert resolve_model(DemoConfig(checkpoint=str(path))) == ("vit_b", str(path))
    junk = tmp_path / "junk.pth"
    import torch

    torch.save({"x": torch.zeros(1)}, junk)
    with pytest.raises(SamcacheError, match="cannot tell which model") as caught:
        resolve_model(DemoConfig(checkpoint=str(junk)))
    assert caught.value.setting == "model_type"  # the CLI adds "; pass --model-type"
