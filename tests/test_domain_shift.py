"""Cross-domain evaluation from caches, and the report's domain-shift table: a head trained on one dataset is scored
on another's cache (on the classes both label), zero-shot and clicks run on each, and `samcache report` sets them
side by side: rows are methods, columns the datasets, cells the mIoU over the classes every run scores."""

import json
import math
import shlex
from pathlib import Path

import pytest

from conftest import invoke
from docs_text import ROOT, marked
from samcache.pipeline.runs import read_csv, write_csv, write_record
from test_readme import readme_commands


def _run(folder: Path, stage: str, dataset: str, ious: dict, train_dataset: str | None = None, **fields) -> Path:
    """A finished run folder as the stages write it (run.json, summary.csv), with its numbers given here."""
    folder.mkdir(parents=True)
    prov = {"split": "val", "model": "tiny", "images": 2, "split_images": 2, "random_weights": True, "oracle": False,
            "dataset": dataset}
    if train_dataset:
        prov.update({"train_split": "train", "train_images": 4, "train_split_images": 4, "train_is_val": False,
                     "train_grew": False, "train_dataset": train_dataset})
    column = {"zero-shot": "iou_semantic", "clicks": "miou@1"}.get(stage, "iou")
    write_csv(folder / "summary.csv", [{"class": c, column: v} for c, v in ious.items()])
    if stage == "clicks":  # its chart's source
        write_csv(folder / "per_object.csv", [{"class": "road", "ious": "[0.7, 0.8, 0.9]"}])
    write_record(folder, {"stage": stage, "status": "complete", "seconds": 1.0, "cache": f"{dataset}.zarr",
                          "classes": "seed5", "fingerprint": "tiny/RANDOM weights (seed 0)/float16/fp32",
                          "images": 2, "provenance": prov, "config": {}, **fields})
    return folder


def test_the_domain_shift_table_averages_the_classes_every_run_scores(tmp_path):
    """Runs written by hand: the table's rows, columns and cells are checked against numbers computed here."""
    zs = {"strategy": "center", "multimask": "best-score"}
    runs = [_run(tmp_path / "head", "head", "gta5", {"road": 0.8, "car": 0.6, "person": 0.4}, "gta5", epochs=2, epoch=2,
                 train_images=4, val_images=2),
            _run(tmp_path / "eval-cs", "evaluate", "cityscapes", {"road": 0.5, "car": 0.3, "person": 0.1}, "gta5",
                 epoch=2, split="val"),
            _run(tmp_path / "zs-gta5", "zero-shot", "gta5", {"road": 0.2, "car": 0.4, "person": 0.9}, **zs),
            _run(tmp_path / "zs-cs", "zero-shot", "cityscapes", {"road": 0.3, "car": 0.5}, **zs),  # no person there
            _run(tmp_path / "clicks-cs", "clicks", "cityscapes", {"road": 0.7, "car": 0.9, "all": 0.8}, max_clicks=3)]
    out = tmp_path / "report"
    invoke("report", *runs, "--out", out, check=True)
    text = (out / "report.md").read_text()
    section = text.split("## Domain shift")[1]
    assert "the 2 classes every run below scores (road, car)" in section
    lines = {line.split("  ")[0]: line.split() for line in section.splitlines()
             if line.startswith(("head", "zero-shot", "clicks"))}
    header = next(line for line in section.splitlines() if line.startswith("method"))
    assert header.split() == ["method", "gta5", "cityscapes"]  # the dataset a head trained on first
    assert lines["head trained on gta5, epoch 2"][-2:] == [f"{(0.8 + 0.6) / 2:.4f}", f"{(0.5 + 0.3) / 2:.4f}"]
    assert lines["zero-shot center/best-score"][-2:] == [f"{(0.2 + 0.4) / 2:.4f}", f"{(0.3 + 0.5) / 2:.4f}"]
    assert lines["clicks max 3 (mIoU@1 per object)"][-2:] == ["-", f"{(0.7 + 0.9) / 2:.4f}"]
    assert (out / "report_domain_shift.png").is_file()
    rows = [r for r in read_csv(out / "report.csv") if r["metric"] == "domain_shift_miou"]
    assert len(rows) == 5 and {r["dataset"] for r in rows} == {"gta5", "cityscapes"}
    evaluated = next(r for r in rows if r["train_dataset"] == "gta5" and r["dataset"] == "cityscapes")
    assert "of cityscapes (trained on gta5)" in evaluated["run"] and math.isclose(float(evaluated["value"]), 0.4)
    single = tmp_path / "single"  # runs of one dataset: no domain-shift table
    invoke("report", runs[2], "--out", single, check=True)
    assert "Domain shift" not in (single / "report.md").read_text()


@pytest.mark.slow
def test_the_documented_domain_shift_example_runs_as_written(tmp_path, monkeypatch):
    """docs/datasets.md's block, as written, from a fresh folder (the config file from this checkout)."""
    commands = readme_commands(marked("domain-shift"))
    monkeypatch.chdir(tmp_path)
    for line in commands:
        line = line.replace("configs/domain_shift.yaml", str(ROOT / "configs" / "domain_shift.yaml"))
        invoke(*shlex.split(line)[1:], check=True)
    head = json.loads(Path("runs/shift/head-on-bdd100k/run.json").read_text())["provenance"]
    assert (head["dataset"], head["train_dataset"]) == ("bdd100k", "gta5")
    text = Path("runs/shift/report/report.md").read_text()
    table = text.split("## Domain shift")[1].split("```")[1]
    assert table.splitlines()[1].split() == ["method", "gta5", "cityscapes", "bdd100k", "acdc"]
    for method in ("head trained on gta5, epoch 4", "zero-shot center/best-score", "clicks max 3"):
        row = next(line for line in table.splitlines() if line.startswith(method))
        assert "-" not in row.split()[-4:], row  # every method scored on every dataset
    assert Path("runs/shift/report/report_domain_shift.png").is_file()
