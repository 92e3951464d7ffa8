"""report.html of the demo: one self-contained page (nothing fetched), every run's column, the gallery's scores as
the runs' own CSV files give them, label maps recomputed from the cache exactly as the runs saved them (no
encoder pass), and the page in headless Chromium: pictures loaded, sorting and filtering, no console error."""

import base64
import csv
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import Browser, chromium_path

GALLERY_RUNS = ("zero-shot-random", "zero-shot-center", "clicks", "head", "head-sam-masks")


class Page(HTMLParser):
    """Every tag with its attributes, and the texts of table headers, table captions and gallery panel captions."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.texts, self._open = [], {"th": [], "caption": [], "cap": []}, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        kind = "cap" if dict(attrs).get("class") == "cap" else tag
        if kind in self.texts:
            self._open = kind
            self.texts[kind].append("")

    def handle_endtag(self, tag):
        if tag in ("th", "caption", "div"):
            self._open = None

    def handle_data(self, data):
        if self._open:
            self.texts[self._open][-1] += data


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def expected_scores(out: Path) -> dict[str, dict[str, float]]:
    """Per run folder, each image's mean IoU, straight from the run's CSV files (the last click's for clicks)."""
    def mean_by_image(pairs):
        values = {}
        for image_id, value in pairs:
            if value != "":
                values.setdefault(image_id, []).append(float(value))
        return {k: float(np.mean(v)) for k, v in values.items()}

    return {
        "zero-shot-random": mean_by_image((r["image_id"], r["iou"]) for r in rows(out / "zero-shot-random" /
                                                                               "detailed_results.csv")),
        "zero-shot-center": mean_by_image((r["image_id"], r["iou"]) for r in rows(out / "zero-shot-center" /
                                                                               "detailed_results.csv")),
        "clicks": mean_by_image((r["image_id"], json.loads(r["ious"])[-1]) for r in rows(out / "clicks" /
                                                                                       "per_object.csv")),
        "head": mean_by_image((r["image_id"], r["iou"]) for r in rows(out / "head" / "per_image.csv")),
        "head-sam-masks": mean_by_image((r["image_id"], r["iou"]) for r in rows(out / "head-sam-masks" /
                                                                             "per_image.csv"))}


def labels_of(out: Path) -> dict[str, str]:
    """Run folder name -> its column label in the report."""
    record = json.loads((out / "report" / "run.json").read_text())
    return {Path(run).name: label for run, label in zip(record["runs"], record["labels"])}


def test_report_page_is_one_file_with_every_run_and_the_runs_own_per_image_scores(demo_dir):
    out, _ = demo_dir
    text = (out / "report" / "report.html").read_text()
    page = Page(text)
    fetched = [a.get("src") or a.get("href") for tag, a in page.tags if tag in ("img", "script", "link", "iframe")]
    assert all(url.startswith(("data:", "#")) for url in fetched if url), fetched  # opens from disk, offline
    assert "http://" not in text and "https://" not in text
    labels = labels_of(out)
    for label in labels.values():  # a column of the comparison, or its own table (clicks: one column per metric)
        assert label in page.texts["th"] or any(label in c for c in page.texts["caption"]), label
    for run in GALLERY_RUNS:  # and a picture per gallery image
        assert sum(c.startswith(labels[run] + " ") for c in page.texts["cap"]) == 2, run
    assert "split val" in text and "road, sidewalk, building, person, car" in text
    items = [a for tag, a in page.tags if tag == "figure" and a.get("class") == "item"]
    assert len(items) == 2  # every val image of the demo
    want = expected_scores(out)
    for item in items:
        scores = json.loads(item["data-scores"])
        for run in GALLERY_RUNS:
            assert scores[labels[run]] == pytest.approx(want[run][item["data-id"]], abs=1e-6), run
    first = [want["zero-shot-random"][a["data-id"]] for a in items]
    assert first == sorted(first)  # worst first by the first run
    maps = [a for tag, a in page.tags if tag == "img" and a.get("class") == "map"]
    assert len(maps) == 2 * (1 + len(GALLERY_RUNS))  # ground truth + every run, for every image
    assert text.count("label maps") and "recomputed" not in text  # the demo's runs saved their predictions
    print(f"report.html of the reduced demo: {len(text.encode()) / 1024:.0f} KiB")


def _pixels(uri: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


@pytest.mark.parametrize("names", [("zero-shot-random", "head"),
                                   pytest.param(("clicks",), marks=pytest.mark.slow)])  # clicks: ~10 s an image
def test_gallery_replays_label_maps_from_the_cache_as_the_runs_saved_them_without_the_encoder(demo_dir, tmp_path,
                                                                                               names):
    from samcache.features.device import PASSES
    from samcache.pipeline.report import provenance_of
    from samcache.pipeline.report_gallery import build_gallery
    from samcache.pipeline.runs import read_record

    out, _ = demo_dir
    for name in names:  # the same runs, without their saved predictions
        shutil.copytree(out / name, tmp_path / name, ignore=shutil.ignore_patterns("predictions"))
    galleries = []
    for base in (out, tmp_path):
        records = [read_record(base / n) for n in names]
        before = PASSES["images"]
        galleries.append(build_gallery([base / n for n in names], records, list(names),
                                       [provenance_of(r) for r in records], 1)[0])
        assert PASSES["images"] == before  # the image encoder never ran
    saved, replayed = galleries
    assert [run.source for run in saved.runs] == ["saved predictions"] * len(names)
    assert all(run.source.startswith("recomputed by the report from the cache") for run in replayed.runs)
    assert [i["id"] for i in saved.items] == [i["id"] for i in replayed.items]
    for mine, theirs in zip(saved.items, replayed.items):
        for name in names:
            assert mine["maps"][name] is not None, name
            assert np.array_equal(_pixels(mine["maps"][name]), _pixels(theirs["maps"][name])), name


@pytest.mark.slow
def test_report_page_in_headless_chromium(demo_dir, tmp_path):
    out, _ = demo_dir
    labels, want = labels_of(out), expected_scores(out)
    with Browser(chromium_path()) as browser:
        browser.open(out / "report" / "report.html")
        tables = browser.eval("[...document.querySelectorAll('thead th, caption')].map(e => e.textContent)")
        for label in labels.values():  # a column of the comparison, or its own table (clicks)
            assert any(label == t or label in t for t in tables), label
        captions = browser.eval("[...document.querySelectorAll('#gallery .item')].map(i => "
                                "[...i.querySelectorAll('.cap')].map(c => c.textContent))")
        for panels in captions:  # the image, its ground truth, and a column per run
            assert panels[:2] == ["image", "ground truth"]
            assert [c.rsplit(" ", 1)[0] for c in panels[2:]] == [labels[r] for r in GALLERY_RUNS]
        widths = browser.eval("[...document.querySelectorAll('#gallery img')].map(i => i.complete && i.naturalWidth)")
        assert len(widths) == 2 * (2 + len(GALLERY_RUNS)) and all(w > 0 for w in widths), widths
        order = "[...document.querySelectorAll('#gallery .item')].filter(i => !i.hidden).map(i => i.dataset.id)"
        pick = ("(() => {{ const s = document.getElementById('{0}'); s.value = {1}; "
                "s.dispatchEvent(new Event('change')); }})()")
        worst_first = browser.eval(order)
        browser.eval(pick.format("order", json.dumps("desc")))
        assert browser.eval(order) == worst_first[::-1] == sorted(want["zero-shot-random"],
                                                                  key=want["zero-shot-random"].get, reverse=True)
        browser.eval(pick.format("order", json.dumps("asc")))
        browser.eval(pick.format("sort-a", json.dumps(labels["head"])))
        assert browser.eval(order) == sorted(want["head"], key=want["head"].get)
        browser.eval(pick.format("sort-b", json.dumps(labels["zero-shot-center"])))
        gap = {i: want["head"][i] - want["zero-shot-center"][i] for i in want["head"]}
        assert browser.eval(order) == sorted(gap, key=gap.get)
        browser.eval(pick.format("class-filter", json.dumps("person")))
        with_person = browser.eval("[...document.querySelectorAll('#gallery .item')].filter(i => "
                                   "i.dataset.classes.split('|').includes('person')).map(i => i.dataset.id)")
        assert browser.eval(order) == [i for i in sorted(gap, key=gap.get) if i in with_person]
        browser.eval(pick.format("class-filter", json.dumps("")))
        browser.eval("document.querySelector('thead th:nth-child(2)').click()")  # a table sorted by a run
        browser.screenshot(tmp_path / "report_page.png")
        assert browser.errors == []
    with Image.open(tmp_path / "report_page.png") as shot:
        assert shot.size[0] == 1366 and shot.size[1] > 1500


def test_a_head_run_without_its_curves_picture_gets_them_drawn_from_metrics_csv(demo_dir, tmp_path):
    from samcache.pipeline.report_charts import training_curves
    from samcache.pipeline.runs import read_record

    out, _ = demo_dir
    run = tmp_path / "head"  # as a head run written before training_curves.png existed
    shutil.copytree(out / "head", run, ignore=shutil.ignore_patterns("training_curves.png", "*.pt", "predictions"))
    ((label, png, note),) = training_curves([(run, read_record(run), "head", "training_curves.png")], "")
    assert "drawn by the report" in note
    with Image.open(io.BytesIO(png)) as picture:
        assert picture.size[0] > 400
