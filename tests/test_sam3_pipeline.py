"""SAM 3 through the stages (tiny model, synthetic data): extract, zero-shot --prompt text, report, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

pytest.importorskip("sam3")

from conftest import assert_one_line_error, invoke  # noqa: E402
from test_head import _official  # noqa: E402  (cityscapesScripts' evaluateImgLists on saved label maps)


def test_text_prompts_score_as_cityscapesscripts_does(sam3_cache, synth_root, tmp_path):
    """iou_semantic of a text-prompt run equals the official evaluation of its saved label maps."""
    from samcache.data.labels import get_class_set

    out = tmp_path / "text"
    invoke("zero-shot", "--cache", sam3_cache, "--prompt", "text", "--classes", "cityscapes19", "--score-threshold",
           "0.1", "--min-instance-area", "0", "--phrase", "car=automobile", "--save-predictions",
           "--save-instances", "--num-workers", "0", "--out", out, "--quiet", check=True)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert (config["prompt"], config["score_threshold"], config["min_instance_area"], config["phrases"]) == \
        ("text", 0.1, 0, ["car=automobile"])
    assert yaml.safe_load((out / "phrases.yaml").read_text())["car"] == ["car", "automobile"]
    from samcache.evaluation.concepts import phrase_map
    from samcache.pipeline.configs import ZeroShotConfig
    from samcache.pipeline.zero_shot_text import parse_phrases

    again = ZeroShotConfig(prompt="text", phrases=yaml.safe_load((out / "phrases.yaml").read_text()))
    assert phrase_map("cityscapes19", parse_phrases(again.phrases)).as_config(get_class_set("cityscapes19")) == \
        yaml.safe_load((out / "phrases.yaml").read_text())  # a run's phrases.yaml feeds a config back
    record = json.loads((out / "run.json").read_text())
    listed = [line for f in (out / "instances").glob("*_pred.txt") for line in f.read_text().splitlines()]
    assert config["instance_threshold"] == record["instance_threshold"] == 0.05
    assert record["instances_listed"] == len(listed) and all(float(x.split()[2]) >= 0.05 for x in listed)
    assert len(list((out / "visualizations").glob("*.png"))) == 1  # --visualize applies to text runs too
    preds = sorted((out / "predictions").glob("*/*_labelIds.png"))
    theirs = _official(preds, synth_root, "cityscapes19")  # cityscapesScripts' evaluateImgLists
    import csv

    ours = {r["class"]: float(r["iou_semantic"]) for r in csv.DictReader(open(out / "summary.csv"))}
    assert len(preds) == 1 and len(list((out / "instances").glob("*_pred.txt"))) == 1
    assert any(not np.isnan(v) and v > 0 for v in theirs.values())  # something was predicted and scored
    for name in get_class_set("cityscapes19").eval_names:
        value = theirs[name]
        assert np.isnan(ours[name]) if np.isnan(value) else ours[name] == pytest.approx(value, abs=1e-6)

    _assert_detailed_rows_recount_the_label_maps(out, preds, synth_root)

    report = tmp_path / "report"
    invoke("report", out, "--out", report, check=True)
    assert "zero-shot, text prompts, no ground truth used" in (report / "report.md").read_text()
    from PIL import Image

    from samcache.pipeline.report_replay import replay_zero_shot  # the gallery's replay of a run without predictions

    replay_zero_shot(out, record, [preds[0].name[: -len("_labelIds.png")]], tmp_path / "replay")
    (again,) = (tmp_path / "replay" / "predictions").glob("*/*_labelIds.png")
    assert np.array_equal(np.asarray(Image.open(again)), np.asarray(Image.open(preds[0])))


def _assert_detailed_rows_recount_the_label_maps(out, preds, synth_root):
    """detailed_results.csv of a text run: per image, each cityscapes19 class in its ground truth or label map,
    with the IoU recounted here from the saved label-map PNG and the ground-truth PNG (trainIds, void out)."""
    import csv

    from cityscapesscripts.helpers.labels import id2label, trainId2label
    from PIL import Image

    train_id = np.full(256, 255, np.uint8)
    for label_id, label in id2label.items():
        if 0 <= label_id < 256 and 0 <= label.trainId < 255:
            train_id[label_id] = label.trainId
    expected = []
    for pred_png in preds:
        image_id = pred_png.name.replace("_labelIds.png", "")
        gt_png = synth_root / "gtFine" / "val" / pred_png.parent.name / f"{image_id}_gtFine_labelIds.png"
        pred, gt = train_id[np.array(Image.open(pred_png))], train_id[np.array(Image.open(gt_png))]
        valid = gt != 255
        for t in range(19):
            inter, union = int(((pred == t) & (gt == t)).sum()), int((((pred == t) | (gt == t)) & valid).sum())
            if union:
                expected.append((image_id, trainId2label[t].name, inter, union))
    rows = list(csv.DictReader(open(out / "detailed_results.csv")))
    assert [(r["image_id"], r["class"], int(r["intersection"]), int(r["union"])) for r in rows] == expected
    assert any(inter for _, _, inter, _ in expected)  # some class was found, not only misses
    for r, (_, _, inter, union) in zip(rows, expected):
        assert float(r["iou"]) == pytest.approx(inter / union, abs=1e-6)
        assert (r["strategy"], r["multimask"], r["points"], r["score"]) == ("text", "instances", "", "")


@pytest.mark.parametrize("args, needles", [
    (["--prompt", "text", "--phrase", "lorry=truck"], ["unknown class 'lorry' in the phrase map"]),
    (["--prompt", "text", "--phrase", "car"], ["--phrase takes CLASS=PHRASE"]),
    (["--prompt", "random", "--save-instances"], ["--save-instances applies to --prompt text only"]),
    (["--prompt", "text", "--score-threshold", "2"], ["score"]),
    (["--prompt", "random", "--score-threshold", "0.1"], ["--score-threshold applies to --prompt text only"]),
    (["--prompt", "text", "--multimask", "oracle"], ["--multimask applies to point and box prompts"]),
    (["--prompt", "text", "--compose", "semantic-head", "--min-instance-area", "5"],
     ["--min-instance-area applies to --compose instances only"]),
    (["--prompt", "text", "--instance-threshold", "0.2"], ["--instance-threshold applies with --save-instances"]),
    (["--prompt", "text", "--phrase", "person=pedestrian,car=vehicle"], ["one phrase per --phrase"]),
    (["--prompt", "text", "--classes", "cityscapes19", "--phrase", "car=truck"],
     ["phrase 'truck' prompts both car and truck"]),
])
def test_bad_text_options_are_one_line_and_write_nothing(sam3_cache, tmp_path, args, needles):
    proc = invoke("zero-shot", "--cache", sam3_cache, *args, "--out", tmp_path / "run")
    assert_one_line_error(proc, *needles)
    assert not (tmp_path / "run").exists()


def test_text_prompts_need_a_sam3_cache(cache32, tmp_path):
    proc = invoke("zero-shot", "--cache", cache32, "--prompt", "text", "--out", tmp_path / "run")
    assert_one_line_error(proc, "--prompt text needs a SAM 3 cache")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # make test's 6 minutes: heavy, and covered in part by faster checks
def test_head_on_sam3_features_scores_as_cityscapesscripts_and_reports_beside_sam1(sam3_cache, cache16, synth_root,
                                                                                  tmp_path):
    """Phase 2 on SAM 3: the head reads the trunk map (channels from the family descriptor); `evaluate`
    equals the official evaluation of its saved label maps; the report names each column's model."""
    import samcache
    from samcache.features.families import family_of
    from samcache.pipeline.runs import read_csv

    head, metrics = samcache.fit_head(sam3_cache, train="val", val="val", epochs=1, batch_size=1, device="cpu",
                                      num_workers=0, visualize=0, out=tmp_path / "head")
    assert head.layers[0][0].in_channels == family_of("sam3_tiny").head_channels()["trunk"] == 64
    assert len(metrics) == 1 and np.isfinite(metrics[0]["val_miou"])
    invoke("evaluate", "--head", tmp_path / "head" / "head_epoch_1.pt", "--cache", sam3_cache, "--split", "val",
           "--device", "cpu", "--num-workers", "0", "--save-predictions", "--quiet", check=True)
    out = tmp_path / "head" / "eval-val-epoch1"
    ours = {r["class"]: r["iou"] for r in read_csv(out / "summary.csv")}
    theirs = _official(sorted((out / "predictions").glob("*/*_labelIds.png")), synth_root, "seed5")
    for name, value in theirs.items():
        assert (ours[name] == "" if np.isnan(value) else float(ours[name]) == pytest.approx(value, abs=1e-6)), name

    invoke("zero-shot", "--cache", sam3_cache, "--prompt", "text", "--out", tmp_path / "text", "--quiet", check=True)
    invoke("zero-shot", "--cache", cache16, "--limit", "1", "--out", tmp_path / "sam1", "--quiet", check=True)
    invoke("report", tmp_path / "text", tmp_path / "head", tmp_path / "sam1", "--out", tmp_path / "report", check=True)
    header = (tmp_path / "report" / "report.md").read_text().split("class     ")[1].splitlines()[0]
    assert "sam3_tiny zero-shot, text prompts, no ground truth used" in header
    assert "sam3_tiny head (1 ep)" in header and "tiny zero-shot random/best-score" in header


def test_bad_sam3_checkpoints_on_the_command_line_are_one_line_and_create_no_cache(synth_root, tmp_path):
    import torch

    from samcache.features.sam1.build import build_random_sam

    sam1 = tmp_path / "sam_tiny.pth"
    torch.save(build_random_sam("tiny", 0).state_dict(), sam1)
    truncated = tmp_path / "sam3.pt"
    truncated.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    cache = tmp_path / "c.zarr"
    common = ["extract", "--data", synth_root, "--cache", cache, "--split", "val", "--limit", "1", "--quiet"]
    for args, needles in ((["--model-type", "sam3", "--checkpoint", truncated], ["is not a PyTorch checkpoint"]),
                          (["--model-type", "sam3", "--checkpoint", sam1], ["SAM 1 checkpoint", "not SAM 3"]),
                          (["--model-type", "sam3"], ["sam3 needs --checkpoint"]),
                          (["--model-type", "sam3", "--checkpoint", tmp_path / "none.pt"], ["not found"])):
        assert_one_line_error(invoke(*common, *args), *needles)
        assert not cache.exists()


def test_demo_prompt_text_needs_a_sam3_model(tmp_path):
    assert_one_line_error(invoke("demo", "--model-type", "tiny", "--prompt", "text", "--out", tmp_path / "demo"),
                          "--prompt text needs a SAM 3 model")
    assert not (tmp_path / "demo").exists()


@pytest.mark.slow
def test_demo_on_sam3_tiny_adds_text_prompts(tmp_path):
    out = tmp_path / "demo"
    invoke("demo", "--model-type", "sam3_tiny", "--train", "4", "--val", "2", "--size", "512x256", "--out", out,
           "--quiet", check=True)
    record = json.loads((out / "zero-shot-text" / "run.json").read_text())
    assert record["strategy"] == "text" and record["provenance"]["model"] == "sam3_tiny"
    assert "zero-shot, text prompts, no ground truth used" in (out / "report" / "report.md").read_text()
