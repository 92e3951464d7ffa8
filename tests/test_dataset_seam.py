"""A dataset is one module and one registration: a dataset samcache has never heard of (tests/toy_dataset.py: its own
layout, label values and void id) is extracted with `--dataset`, recorded in the cache and in every run, and
prompted, scored and saved in its own label ids; nothing outside ``samcache/data`` names a dataset's paths or
its instance encoding. References: the mask PNGs read with PIL, the cache read with plain zarr."""

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image

from conftest import invoke
from samcache.pipeline.runs import read_csv

PACKAGE = Path(__file__).parent.parent / "samcache"
STREET, VEHICLE, HEAVEN, VOID = 1, 2, 3, 7


@pytest.fixture(scope="module")
def toyset():
    from samcache.data import datasets
    from toy_dataset import register_toyset

    register_toyset()
    yield
    datasets.DATASETS.pop("toyset", None)


def _write_toyset(root: Path, n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    masks = []
    for i in range(n):
        mask = np.full((96, 160), STREET, np.uint8)
        mask[:30] = HEAVEN
        mask[50 + i: 80, 20 + 10 * i: 90] = VEHICLE
        mask[90:] = VOID
        colors = np.array([[0, 0, 0], [90, 90, 90], [200, 30, 30], [120, 170, 230], [0, 0, 0], [0, 0, 0], [0, 0, 0],
                           [10, 10, 10]], np.float32)
        image = np.clip(colors[mask] + rng.normal(0, 6, (*mask.shape, 3)), 0, 255).astype(np.uint8)
        for folder, array in (("pictures", image), ("masks", mask)):
            (root / "val" / folder).mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(root / "val" / folder / f"toy{i}.png")
        masks.append(mask)
    return masks


def test_a_registered_dataset_runs_through_extract_and_zero_shot(toyset, tmp_path):
    masks = _write_toyset(tmp_path / "toy")
    cache, out = tmp_path / "toy.zarr", tmp_path / "zs"
    invoke("extract", "--dataset", "toyset", "--data", tmp_path / "toy", "--cache", cache, "--split", "val",
           "--model-type", "tiny", "--num-workers", "0", "--device", "cpu", "--quiet", check=True)
    root = zarr.open_group(str(cache), mode="r")
    assert (root.attrs["dataset"], root.attrs["label_void"]) == ("toyset", VOID)
    for row, mask in enumerate(masks):
        assert np.array_equal(root["val"]["labels"][row], mask)  # the dataset's own ids, as the PNG holds them
    invoke("zero-shot", "--cache", cache, "--split", "val", "--prompt", "center", "--save-predictions",
           "--num-workers", "0", "--device", "cpu", "--visualize", "1", "--out", out, "--quiet", check=True)
    summary = read_csv(out / "summary.csv")
    # seed5 on this dataset: only the classes it labels are scored (road, car); its heaven trains as "other"
    assert [r["class"] for r in summary] == ["road", "car", "mean"]
    assert {r["dataset"] for r in summary} == {"toyset"}
    assert json.loads((out / "run.json").read_text())["provenance"]["dataset"] == "toyset"
    value = {"road": STREET, "car": VEHICLE}
    for row in read_csv(out / "detailed_results.csv"):
        (x, y), = json.loads(row["points"])
        assert masks[int(row["image_id"][-1])][y, x] == value[row["class"]]
    for i in range(len(masks)):
        pred = np.asarray(Image.open(out / "predictions" / f"toy{i}_labelIds.png"))
        assert set(np.unique(pred)) <= {STREET, VEHICLE, VOID}  # in the dataset's ids; nothing predicted: its void
    assert (out / "visualizations" / "toy0.png").is_file()


def test_the_default_cache_records_cityscapes(cache16):
    assert zarr.open_group(str(cache16), mode="r").attrs["dataset"] == "cityscapes"


def _code(path: Path) -> str:
    """The module without its docstrings and comments (they may name Cityscapes as an example)."""
    text = path.read_text()
    lines = text.splitlines()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for k in range(node.lineno - 1, node.end_lineno):
                lines[k] = ""
    return "\n".join(line.split("#")[0] for line in lines)


def test_nothing_outside_data_names_a_dataset_layout_or_instance_encoding():
    """Paths and the x1000 encoding live in samcache/data; cityscapesScripts' own evaluators (official.py, the
    instance result format) are Cityscapes' by definition."""
    allowed = {"evaluation/official.py", "evaluation/instance_results.py"}
    pattern = re.compile(r"leftImg8bit|gtFine|_labelIds\.png|\b1000\b|hasInstances|cityscapesscripts")
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(PACKAGE))
        if rel.startswith("data/") or rel in allowed:
            continue
        found = [m.group(0) for m in pattern.finditer(_code(path))]
        assert not found, f"{rel} names {found}"


def test_a_head_is_scored_on_the_classes_both_datasets_label_and_none_is_one_line():
    """``evaluate --head`` on another dataset's cache reads the head's class set through ``shared_with``."""
    from samcache.data.dataset import ClassInfo, Dataset
    from samcache.data.labels import get_class_set
    from samcache.errors import SamcacheError

    class Roads(Dataset):  # labels road and sky only
        name, title, void_id, labels_are = "roads", "Roads", 0, "road 1, sky 2"
        classes = (ClassInfo(0, "void", 255, False, True), ClassInfo(1, "road", 0, False, False, "road"),
                   ClassInfo(2, "sky", 1, False, False, "sky"))

    class Skies(Roads):
        name, title = "skies", "Skies"
        classes = (ClassInfo(0, "void", 255, False, True), ClassInfo(5, "sky", 0, False, False, "sky"))

    cs = get_class_set("cityscapes19")
    shared = cs.shared_with(Roads())
    assert shared.eval_names == ["road", "sky"] and shared.class_names == cs.class_names  # same indices
    with pytest.raises(SamcacheError, match="Skies and Cityscapes share no evaluated class of class set seed5"):
        get_class_set("seed5").shared_with(Skies())
