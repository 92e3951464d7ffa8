"""`samcache --help` answers without importing what the commands run on (torch, the models, Zarr, Dask),
and the choices it offers are read from the registries when a command runs, not when the CLI is imported.

How fast --help is, is measured in `make bench` (benchmarks/bench_cli.py), never asserted here.
"""

import json
import subprocess
import sys

import pytest

from conftest import invoke

# what a command runs on; --help needs none of it (numpy alone takes a noticeable part of a second to import)
HEAVY = ("torch", "torchvision", "segment_anything", "sam2", "sam3", "numpy", "scipy", "skimage", "PIL", "zarr",
         "numcodecs", "h5py", "dask", "distributed", "pandas", "matplotlib", "cv2")


def _heavy(modules) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


@pytest.mark.parametrize("args", [["--help"], ["zero-shot", "--help"]])
def test_help_as_typed_imports_no_torch(args):
    """`python -m samcache ... --help` as a user runs it; the interpreter's own import log is the reference."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "samcache", *args], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Usage: samcache" in proc.stdout and "--help" in proc.stdout
    imported = [line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:") and line.count("|") == 2]
    assert "samcache.pipeline.cli" in imported  # the log is read right
    assert not _heavy(imported), f"`samcache {' '.join(args)}` imported {_heavy(imported)}"


DRIVER = """
import json, sys
from samcache.pipeline.cli import cli
for args in [[], *([name] for name in cli.commands)]:
    assert cli.main([*args, "--help"], prog_name="samcache", standalone_mode=False) == 0
print(json.dumps({"commands": list(cli.commands), "modules": sorted(sys.modules)}))
"""


def test_every_commands_help_imports_nothing_heavy():
    proc = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    for name in result["commands"]:
        assert f"Usage: samcache {name} [OPTIONS]" in proc.stdout
    assert len(result["commands"]) >= 14
    assert not _heavy(result["modules"]), _heavy(result["modules"])


@pytest.fixture()
def late_family(monkeypatch):
    """tests/toy_family.py's family, registered only now, after the CLI and its configs were imported;
    the registry is restored afterwards."""
    from samcache.features import families
    from samcache.pipeline import cli  # noqa: F401  imported first, as in a notebook that registers later

    monkeypatch.setattr(families, "FAMILIES", dict(families.FAMILIES))
    from toy_family import register_toy

    return register_toy()


@pytest.mark.parametrize("command", ["extract", "zero-shot", "clicks", "demo"])
def test_a_family_registered_after_import_is_offered_and_accepted(late_family, command):
    from samcache.pipeline.cli import cli
    from samcache.pipeline.config import resolve
    from samcache.pipeline.configs import ClicksConfig, DemoConfig, ExtractConfig, ZeroShotConfig

    (model_type,) = late_family.model_types
    option = next(p for p in cli.commands[command].params if p.name == "model_type")
    assert model_type in option.type.choices
    assert model_type in " ".join(invoke(command, "--help").stdout.split())  # listed in --help
    ctx = cli.commands[command].make_context(command, ["--model-type", model_type])  # click accepts it
    assert ctx.params["model_type"] == model_type
    config = {"extract": ExtractConfig, "zero-shot": ZeroShotConfig, "clicks": ClicksConfig, "demo": DemoConfig}
    assert resolve(config[command], model_type=model_type).model_type == model_type  # and by the config


def test_an_unregistered_model_type_is_still_refused_in_one_line(late_family, tmp_path):
    """From the command line (click lists the choices) and from a YAML file (the config names the key)."""
    proc = invoke("extract", "--model-type", "vit_x", "--cache", tmp_path / "c.zarr")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "'vit_x' is not one of" in proc.stderr and late_family.model_types[0] in proc.stderr
    (tmp_path / "c.yaml").write_text("model_type: vit_x\n")
    proc = invoke("extract", "--config", tmp_path / "c.yaml", "--cache", tmp_path / "c.zarr")
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("Error:")]
    assert len(line) == 1 and "model_type in" in line[0] and "Input should be 'vit_h'" in line[0], proc.stderr
    assert f"'{late_family.model_types[0]}'" in line[0]
    assert not (tmp_path / "c.zarr").exists()


def test_help_still_lists_model_type_choices_and_defaults():
    from samcache.features.families import model_types

    listed = "|".join(model_types())
    text = " ".join(invoke("extract", "--help").stdout.split())
    assert f"--model-type [{listed}]" in text and "RANDOM weights, tests). [default: vit_h]" in text
    text = " ".join(invoke("demo", "--help").stdout.split())
    assert f"--model-type [auto|{listed}]" in text and "[default: auto]" in text
