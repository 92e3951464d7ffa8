"""SAM 3 through the stages (tiny model, synthetic data): extract, zero-shot --prompt text, report, errors."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

pytest.importorskip("sam3")

from conftest import assert_one_line_error, invoke  # noqa: E402


def test_text_prompts_score_as_cityscapesscripts_does(sam3_cache, synth_root, tmp_path):
    """iou_semantic of a text-prompt run equals the official evaluation of its saved label maps."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    from samcache.data.labels import get_class_set

    out = tmp_path / "text"
    invoke("zero-shot", "--cache", sam3_cache, "--prompt", "text", "--classes", "cityscapes19", "--score-threshold",
           "0.1", "--min-instance-area", "0", "--phrase", "car=automobile", "--save-predictions",
           "--save-instances", "--num-workers", "0", "--out", out, "--quiet", check=True)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["prompt"], config["score_threshold"], config["min_instance_area"], config["phrases"]) == \
        ("text", 0.1, 0, ["car=automobile"])
    assert yaml.safe_load((out / "phrases.yaml").read_text())["car"] == ["car", "automobile"]
    preds = sorted((out / "predictions").glob("*/*_labelIds.png"))
    gts = [synth_root / "gtFine" / "val" / p.parent.name / p.name.replace("_labelIds", "_gtFine_labelIds")
           for p in preds]
    args = official.args
    args.quiet, args.JSONOutput, args.evalInstLevelScore, args.evalPixelAccuracy = True, False, False, False
    theirs = official.evaluateImgLists([str(p) for p in preds], [str(g) for g in gts], args)["classScores"]
    import csv

    ours = {r["class"]: float(r["iou_semantic"]) for r in csv.DictReader(open(out / "summary.csv"))}
    assert len(preds) == 1 and len(list((out / "instances").glob("*_pred.txt"))) == 1
    assert any(not np.isnan(v) and v > 0 for v in theirs.values())  # something was predicted and scored
    for name in get_class_set("cityscapes19").eval_names:
        value = theirs[name]
        assert np.isnan(ours[name]) if np.isnan(value) else ours[name] == pytest.approx(value, abs=1e-6)

    report = tmp_path / "report"
    invoke("report", out, "--out", report, check=True)
    assert "zero-shot, text prompts, no ground truth used" in (report / "report.md").read_text()


@pytest.mark.parametrize("args, needles", [
    (["--prompt", "text", "--phrase", "lorry=truck"], ["unknown class 'lorry' in the phrase map"]),
    (["--prompt", "text", "--phrase", "car"], ["--phrase takes CLASS=PHRASE"]),
    (["--prompt", "random", "--save-instances"], ["--save-instances applies to --prompt text only"]),
    (["--prompt", "text", "--score-threshold", "2"], ["score"]),
])
def test_bad_text_options_are_one_line_and_write_nothing(sam3_cache, tmp_path, args, needles):
    proc = invoke("zero-shot", "--cache", sam3_cache, *args, "--out", tmp_path / "run")
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "run").exists()


def test_text_prompts_need_a_sam3_cache(cache32, tmp_path):
    proc = invoke("zero-shot", "--cache", cache32, "--prompt", "text", "--out", tmp_path / "run")
    assert_one_line_error(proc, "--prompt text needs a SAM 3 cache")
    assert not (tmp_path / "run").exists()
