"""The wheel set carried to the GPU machine installs and imports there (checked here, without a GPU).

There, `pip install --no-index --no-deps --target` checks nothing, so a missing need only shows as an
ImportError after the machine's minutes are spent. These tests check the pin files against the GPU
image's package list (benchmarks/gpu-image-packages.txt) using real package metadata: the wheels in
.whl/ when `make gpu-wheels` has filled it, and always the same versions' metadata installed in this venv.
"""

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from benchmarks.gpu_wheels import (Dist, carried_from_installed, carried_from_wheels, check, installed_dist,
                                   read_image, read_pins, tag_problem)

ROOT = Path(__file__).resolve().parents[1]


def test_every_pinned_need_is_met_for_python_312_by_the_pins_plus_the_image():
    pins, image = read_pins(), read_image()
    same = {key: pin for key, pin in pins.items()
            if (dist := installed_dist(pin.name)) is not None and pin.specifier.contains(dist.version)}
    if len(same) < len(pins) // 2:
        pytest.skip(f"this venv has only {len(same)} of the {len(pins)} pinned versions installed")
    carried, problems = carried_from_installed(same)
    for key in pins.keys() - same.keys():  # pinned at another version than this venv's: its name still counts
        carried[key] = Dist(pins[key].name, str(next(iter(pins[key].specifier)).version), [])
    report = check(carried, image)
    assert problems == [] and report.problems == []


def test_the_pins_name_what_samcache_imports_that_the_image_lacks():
    pins, image = read_pins(), read_image()
    setup = (ROOT / "setup.cfg").read_text().split("install_requires =", 1)[1].split("\n\n", 1)[0]
    for line in filter(None, (ln.split("#", 1)[0].strip() for ln in setup.splitlines())):
        key = canonicalize_name(Requirement(line).name)
        assert key in pins or key in image, f"{line}: neither pinned for the GPU machine nor in its image"
    assert "importlib-metadata" not in pins  # 10.2 needs lazy-importer and nothing needs it on 3.12


def test_the_checker_catches_what_broke_the_old_wheel_set():
    image = {"typing-extensions": None, "numpy": "2.5.2", "zipp": None}
    carried = {
        "importlib-metadata": Dist("importlib-metadata", "10.2.0", ["zipp", "lazy-importer>=0.1"]),
        "pydantic": Dist("pydantic", "2.14.4", ["typing-extensions>=4.16.0", "email-validator>=2; extra == 'email'"]),
        "dask": Dist("dask", "2026.8.0", ['importlib_metadata>=4.13.0; python_version < "3.12"',
                                          'numpy>=1.24; extra == "array"', "pandas>=2.0; extra == 'dataframe'"]),
        "old": Dist("old", "1.0", ["numpy<2.4"]),
    }
    carried["dask"].extras = {"array"}
    report = check(carried, image)
    assert report.problems == ["importlib-metadata 10.2.0 needs lazy-importer>=0.1: neither carried nor in the image",
                               "old 1.0 needs numpy<2.4: the image has 2.5.2; carry a wheel of a version that fits"]
    assert report.assumed == ["pydantic 2.14.4 needs typing-extensions>=4.16.0: the image has it, version unknown"]
    carried["typing-extensions"] = Dist("typing-extensions", "4.15.0", [])
    assert "pydantic 2.14.4 needs typing-extensions>=4.16.0: 4.15.0 is carried" in check(carried, image).problems


def test_extras_asked_by_a_carried_need_bring_their_own_needs():
    carried = {"a": Dist("a", "1", ["b[fast]>=1"]), "b": Dist("b", "1", ['c; extra == "fast"'])}
    assert check(carried, {}).problems == ["b 1 needs c: neither carried nor in the image"]


def test_wheel_tags_must_install_on_cp312_manylinux_x86_64():
    assert tag_problem(Path("a-1-py3-none-any.whl")) is None
    assert tag_problem(Path("b-1-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")) is None
    assert tag_problem(Path("c-1-cp311-abi3-manylinux1_x86_64.whl")) is None
    assert tag_problem(Path("d-1-cp311-cp311-manylinux_2_17_x86_64.whl"))
    assert tag_problem(Path("e-1-cp312-cp312-manylinux_2_17_aarch64.whl"))
    assert tag_problem(Path("f-1-cp312-cp312-macosx_11_0_arm64.whl"))


def test_a_folder_of_wheels_is_checked_for_duplicates_strays_and_missing_pins(tmp_path):
    import zipfile

    def wheel(name, version, requires=()):
        path = tmp_path / f"{name}-{version}-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as archive:
            meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + \
                   "".join(f"Requires-Dist: {r}\n" for r in requires)
            archive.writestr(f"{name}-{version}.dist-info/METADATA", meta)

    wheel("alpha", "1.0", ["beta>=2"])
    wheel("alpha", "1.1")
    wheel("stray", "0.1")
    pins = {"alpha": Requirement("alpha==1.1"), "beta": Requirement("beta==2.0")}
    carried, problems = carried_from_wheels(tmp_path, pins)
    assert any("two versions of alpha" in p for p in problems)
    assert any("stray-0.1" in p and "pinned in no pin file" in p for p in problems)
    assert any("beta==2.0 is pinned but no wheel" in p for p in problems)


def test_the_carried_wheels_when_present():
    folder = ROOT / ".whl"
    if not any(folder.glob("*.whl")):
        pytest.skip("no .whl/ here: `make gpu-wheels` fills it (the pins are checked above from this venv)")
    carried, problems = carried_from_wheels(folder, read_pins())
    report = check(carried, read_image())
    assert problems == [] and report.problems == []


def test_every_module_the_code_imports_is_on_the_gpu_machine():
    """Each third-party module that samcache, the benchmarks or the tests import comes from a pinned wheel
    or the image: found by reading the sources (ast), mapped to distributions by this venv's metadata."""
    import ast
    import sys
    from importlib.metadata import packages_distributions

    local = {"samcache", "benchmarks"} | {path.stem for path in (ROOT / "tests").glob("*.py")}
    modules = set()
    for folder in ("samcache", "benchmarks", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    third_party = sorted(m for m in modules - local if m not in sys.stdlib_module_names)
    provided = packages_distributions()
    available = set(read_pins()) | set(read_image())
    missing = {m: provided.get(m) for m in third_party
               if not any(canonicalize_name(d) in available for d in provided.get(m, [m]))}
    assert missing == {}, f"imported but neither pinned nor in the GPU image: {missing}"
    assert {"torch", "zarr", "segment_anything", "packaging"} <= set(third_party)
