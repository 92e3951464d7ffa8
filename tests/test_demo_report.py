"""`samcache demo` end to end (reduced), the report against the runs it reads, and the config files."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.measure import label as connected_components

from conftest import assert_one_line_error, invoke
from samcache.pipeline.config import resolve
from samcache.pipeline.configs import DemoConfig, EvaluateConfig, ExtractConfig, HeadConfig, ZeroShotConfig
from samcache.evaluation.visualize import series_colors
from samcache.pipeline.runs import read_csv

CONFIGS = Path(__file__).parent.parent / "configs"


def test_demo_writes_every_promised_file(demo_dir):
    out, stdout = demo_dir
    for prompt in ("random", "center"):
        run = out / f"zero-shot-{prompt}"
        for name in ("detailed_results.csv", "summary.csv", "config.yaml", "run.json"):
            assert (run / name).is_file(), run / name
        assert len(list((run / "visualizations").glob("*.png"))) == 2
    for name in ("head_epoch_1.pt", "metrics.csv", "summary.csv", "config.yaml", "run.json"):
        assert (out / "head" / name).is_file(), name
    for name in ("per_object.csv", "summary.csv", "curve.png", "config.yaml", "run.json"):
        assert (out / "clicks" / name).is_file(), name
    assert list((out / "head" / "visualizations").glob("*.png"))
    for name in ("report.md", "report.csv", "report_iou.png", "report_clicks.png", "report.html"):
        assert (out / "report" / name).is_file(), name
    for name in ("per_image.csv", "training_curves.png"):
        assert (out / "head" / name).is_file(), name
    for name in ("masks.csv", "summary.csv", "per_image.csv", "config.yaml", "run.json"):
        assert (out / "head-sam-masks" / name).is_file(), name
    assert len(list((out / "head-sam-masks" / "masks").glob("*.json"))) == 2
    assert len(list((out / "head-sam-masks" / "predictions").glob("*/*_labelIds.png"))) == 2
    assert stdout.splitlines()[-1] == f"open the report in a browser: {(out / 'report' / 'report.html').resolve()}"
    assert (out / "config.yaml").is_file() and (out / "cache.zarr" / "zarr.json").is_file()
    # the terminal shows the comparison, the paths and the random-weights warning
    assert "zero-shot random/best-score" in stdout and "head (1 ep)" in stdout
    assert str(out / "report" / "report_iou.png") in stdout
    assert "RANDOM weights" in stdout and "not SAM's accuracy" in stdout
    assert "RANDOM weights" in (out / "report" / "report.md").read_text()


def test_report_numbers_are_the_runs_summaries(demo_dir):
    out, stdout = demo_dir
    report = read_csv(out / "report" / "report.csv")
    sources = {("zero-shot random/best-score", "semantic_iou"): (out / "zero-shot-random", "iou_semantic"),
               ("zero-shot random/best-score", "prompted_iou"): (out / "zero-shot-random", "iou_dataset"),
               ("zero-shot center/best-score", "semantic_iou"): (out / "zero-shot-center", "iou_semantic"),
               ("zero-shot center/best-score", "prompted_iou"): (out / "zero-shot-center", "iou_dataset"),
               ("head (1 ep)", "semantic_iou"): (out / "head", "iou"),
               # the demo's default 5 clicks; the label names the cap that NoC depends on
               **{("clicks max 5", m): (out / "clicks", m) for m in ("miou@1", "miou@5", "noc@85", "noc@90")},
               # SAM's automatic masks refining the head (Phase 1 + 2), and the same head before refinement
               **{("head + SAM masks (ep 1)", m): (out / "head-sam-masks", c)
                  for m, c in (("semantic_iou", "iou"), ("the head before refinement", "iou_head"),
                               ("masks per image", "masks_per_image"), ("fraction of pixels in a mask", "covered"))}}
    assert {(r["run"], r["metric"]) for r in report} == set(sources)
    assert {r["class_set"] for r in report} == {"seed5"}
    for (run, metric), (folder, column) in sources.items():
        mine = {r["class"]: r["value"] for r in report if (r["run"], r["metric"]) == (run, metric)}
        summary = {r["class"]: r.get(column, "") for r in read_csv(folder / "summary.csv")}
        last = "all" if run.startswith("clicks") else "mean"
        assert list(mine) == ["road", "sidewalk", "building", "person", "car", last]
        for name, value in mine.items():
            want = summary[name]
            assert (want == "" and value in ("", "nan")) or float(value) == pytest.approx(float(want), abs=1e-6), \
                (run, name)
    assert "no false positives" in stdout and "false positives counted" in stdout


def test_chart_is_a_png_with_one_bar_per_class_and_run(demo_dir):
    out, _ = demo_dir
    path = out / "report" / "report_iou.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    pixels = np.asarray(Image.open(path).convert("RGB"))
    report = [r for r in read_csv(out / "report" / "report.csv") if r["metric"] == "semantic_iou"]
    columns = list(dict.fromkeys(r["run"] for r in report))
    labels = json.loads((out / "report" / "run.json").read_text())["labels"]  # a run's colour: its place here
    for column in columns:
        color = series_colors(len(labels))[labels.index(column)]
        rgb = np.array([round(c * 255) for c in color[:3]])
        blobs = connected_components(np.all(pixels == rgb, axis=-1))
        found = sum(1 for k in range(1, blobs.max() + 1) if (blobs == k).sum() >= 10)
        values = [float(r["value"] or 0) for r in report if r["run"] == column and r["class"] != "mean"]
        tall, tiny = sum(v >= 0.03 for v in values), sum(0 < v < 0.03 for v in values)
        assert tall + 1 <= found <= tall + tiny + 1, (column, values, found)  # + its legend patch


def test_report_refuses_folders_that_are_not_runs(tmp_path):
    assert_one_line_error(invoke("report", tmp_path, "--out", tmp_path / "r"), "not a samcache run folder")


def test_config_files_load_for_every_command():
    for name in ("default.yaml", "demo.yaml"):
        path = CONFIGS / name
        resolve(ExtractConfig, path)
        resolve(ZeroShotConfig, path)
        resolve(HeadConfig, path)
        resolve(EvaluateConfig, path, head="runs/head/head_epoch_20.pt")
        resolve(DemoConfig, path)
    real = resolve(ExtractConfig, CONFIGS / "default.yaml")
    assert (real.model_type, real.precision, real.checkpoint) == ("vit_h", "bf16", "checkpoints/sam_vit_h_4b8939.pth")
    demo = resolve(DemoConfig, CONFIGS / "demo.yaml")
    assert resolve(ExtractConfig, CONFIGS / "demo.yaml").model_type == "tiny"
    assert resolve(ExtractConfig, CONFIGS / "demo.yaml").cache == f"{demo.out}/cache.zarr"


@pytest.mark.parametrize("command", ["demo", "report"])
def test_help(command):
    assert "Usage: samcache " + command in invoke(command, "--help", check=True).stdout


@pytest.mark.slow
def test_demo_reuse_is_keyed_on_dtype_and_a_failed_extraction_keeps_earlier_results(demo_dir, tmp_path, monkeypatch):
    import shutil

    import numpy as np

    import samcache.pipeline.demo as demo_module
    from conftest import snapshot
    from samcache.cache.reader import open_cache
    from samcache.errors import SamcacheError

    out = tmp_path / "demo"
    shutil.copytree(demo_dir[0], out)
    results = {name: snapshot(out / name) for name in ("zero-shot-random", "head", "report")}
    cfg = DemoConfig(out=str(out), train=4, val=2, size="512x256", epochs=1, dtype="float32", visualize=0)

    def fails(*a, **k):
        raise SamcacheError("extraction failed")

    monkeypatch.setattr(demo_module, "extract", fails)
    with pytest.raises(SamcacheError):
        demo_module.run_demo(cfg, progress=False)
    assert {name: snapshot(out / name) for name in results} == results  # nothing deleted before success
    assert open_cache(out / "cache.zarr").split("val").embeddings.dtype == np.float16
    monkeypatch.undo()
    demo_module.run_demo(cfg, progress=False)  # another dtype: a new cache, not "pass --rebuild"
    assert open_cache(out / "cache.zarr").split("val").embeddings.dtype == np.float32
    assert not (out / "cache.next.zarr").exists() and not (out / "data.next").exists()
    assert snapshot(out / "head") != results["head"]


def test_demo_refuses_a_folder_that_is_not_a_demo_before_doing_anything(tmp_path):
    from conftest import snapshot

    (tmp_path / "myproj").mkdir()
    (tmp_path / "myproj" / "config.yaml").write_text("my: precious config\n")
    before = snapshot(tmp_path)
    assert_one_line_error(invoke("demo", "--out", tmp_path / "myproj", "--train", "1", "--val", "1"),
                          "not a samcache demo folder")
    assert snapshot(tmp_path) == before


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


def test_demo_heads_tensorboard_log_reads_back_as_its_metrics(demo_dir):
    from test_head_outputs import assert_log_is_metrics

    assert_log_is_metrics(demo_dir[0] / "head")
