"""Every run names its split, model, subset, RANDOM and ORACLE (run.json, summary.csv, report.csv,
report.md, labels); charts keep legends off the curves, wrap long titles, never repeat colours; log files."""

import json

import matplotlib.pyplot as plt
import pytest

from conftest import extract_cfg, invoke
from samcache.pipeline.runs import read_csv

ZS = ["--device", "cpu", "--num-workers", "0", "--visualize", "0"]


@pytest.fixture(scope="module")
def limited_cache(synth_root, tmp_path_factory):
    """val extracted with --limit 2 of the 3 images in the data folder."""
    from samcache.pipeline.extract import extract

    cache = tmp_path_factory.mktemp("lim") / "lim.zarr"
    extract(extract_cfg(synth_root, cache, "val", dtype="float16", limit=2), progress=False)
    return cache


def test_report_names_split_model_subset_random_and_oracle_of_every_run(cache16, limited_cache, tmp_path):
    val = tmp_path / "val"
    proc = invoke("zero-shot", "--cache", limited_cache, "--out", val, *ZS, check=True)
    assert "zero-shot uses 2 of the 3 images of split val" in proc.stderr  # the --limit extraction is said
    train = tmp_path / "train"
    invoke("zero-shot", "--cache", cache16, "--split", "train", "--limit", "1", "--multimask", "oracle",
           "--out", train, *ZS, check=True)
    summary = read_csv(val / "summary.csv")[0]
    assert {k: summary[k] for k in ("split", "model", "images", "split_images", "random_weights", "oracle")} == \
        {"split": "val", "model": "tiny", "images": "2", "split_images": "3", "random_weights": "True",
         "oracle": "False"}
    real = tmp_path / "real"  # the same run as if made with a real checkpoint: RANDOM must then be per run
    import shutil

    shutil.copytree(train, real)
    record = json.loads((real / "run.json").read_text())
    record["provenance"]["random_weights"] = False
    (real / "run.json").write_text(json.dumps(record))
    out = tmp_path / "report"
    proc = invoke("report", val, train, real, "--out", out, "--gallery", "0", check=True)  # labels: no gallery
    rows = read_csv(out / "report.csv")
    by_run = {r["run"]: r for r in rows}
    assert len(by_run) == 3
    labels = list(by_run)
    val_label = next(lab for lab in labels if "on val" in lab)
    assert "(2/3 img)" in val_label and "RANDOM" in val_label
    assert by_run[val_label]["split_images"] == "3" and by_run[val_label]["images"] == "2"
    train_labels = [lab for lab in labels if "on train" in lab]
    assert len(train_labels) == 2 and sum("RANDOM" in lab for lab in train_labels) == 1
    assert all(by_run[lab]["oracle"] == "True" for lab in train_labels)
    assert {r["split"] for r in rows} == {"val", "train"} and {r["model"] for r in rows} == {"tiny"}
    text = (out / "report.md").read_text()
    assert "split val, model tiny, 2/3 images (subset))" in text  # its label already says RANDOM
    assert "Runs marked RANDOM" in text and "Runs marked RANDOM" in proc.stdout
    for line in (text + "\n" + proc.stdout).splitlines():  # said once per line, never "RANDOM: RANDOM weights"
        assert line.count("RANDOM weights") <= 1 and "RANDOM: RANDOM" not in line, line
        if line.startswith("- `") or ": split " in line:  # a run's list line: its label, then its provenance
            assert line.count("RANDOM") <= 1, line


def _kept_figures(monkeypatch):
    kept = []
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    return kept


def _legend_clear_of_axes(fig) -> bool:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None and legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer)):
            return False
    return True


def test_charts_keep_legends_off_curves_wrap_titles_and_never_repeat_colours(tmp_path, monkeypatch):
    from samcache.evaluation.visualize import save_click_overlay, save_curve, series_colors

    for n in (3, 9, 12, 25):
        colors = series_colors(n)
        assert len(set(colors)) == n
    kept = _kept_figures(monkeypatch)
    title = "mIoU after k clicks, val, first mask oracle (ORACLE first mask: best of 3 against ground truth)  " * 2
    save_curve(tmp_path / "curve.png", {f"class {i}": [0.1 * i, 0.2] for i in range(9)} | {"all": [0.3, 0.4]},
               title)
    fig = kept[-1]
    assert _legend_clear_of_axes(fig)
    shown = fig.axes[0].get_title()
    assert "\n" in shown and shown.replace("\n", " ").split() == title.split()  # wrapped, nothing lost
    import numpy as np

    mask = np.zeros((64, 64), bool)
    mask[10:30, 10:30] = True
    save_click_overlay(tmp_path / "o.png", None, mask, mask, [(20, 20, 1), (5, 5, 0)], [0.5, 0.9], "t")
    labels = [t.get_text() for t in kept[-1].axes[0].get_legend().get_texts()]
    assert "positive click" in labels and "negative click" in labels and "object (missed)" in labels
