"""Every bad value is one line (exit != 0, no traceback) and writes nothing; YAML is typed; --help is complete."""

import re
from pathlib import Path

import click
import pytest
import yaml

from conftest import assert_one_line_error, invoke, snapshot
from docs_text import marked
from samcache.cache.schema import CODECS, DEFAULT_CACHE
from samcache.features.families import model_types
from samcache.evaluation.strategies import strategy_names
from samcache.pipeline.cli import cli
from samcache.pipeline.config import resolve
from samcache.pipeline.configs import DemoConfig, ExtractConfig, HeadConfig, ZeroShotConfig

ROOT = Path(__file__).parent.parent


@pytest.fixture()
def workdir(tmp_path, synth_root, cache16):
    """A folder holding only a data link and a cache copy, so 'nothing written' is checkable."""
    import shutil

    (tmp_path / "data").symlink_to(synth_root)
    shutil.copytree(cache16, tmp_path / "c.zarr")
    return tmp_path


BAD_VALUES = [
    (["extract", "--batch-size", "0"], "--batch-size"),
    (["extract", "--batch-size", "-2"], "--batch-size"),
    (["extract", "--num-workers", "-1"], "--num-workers"),
    (["extract", "--limit", "0"], "--limit"),
    (["extract", "--limit", "-1"], "--limit"),
    (["extract", "--seed", "-1"], "--seed"),
    (["extract", "--device", "gpu"], "unknown device 'gpu'"),
    (["extract", "--dask", "foo"], "--dask takes local:N"),
    (["extract", "--dask", "local:0"], "N >= 1"),
    (["extract", "--resources", "GPU"], "NAME=AMOUNT"),
    (["extract", "--split", "../val"], "split name"),
    (["train-head", "--batch-size", "-2"], "--batch-size"),
    (["train-head", "--epochs", "0"], "--epochs"),
    (["train-head", "--epochs", "-1"], "--epochs"),
    (["train-head", "--lr", "-1"], "--lr"),
    (["train-head", "--width", "0"], "--width"),
    (["train-head", "--num-workers", "-1"], "--num-workers"),
    (["train-head", "--limit", "0"], "--limit"),
    (["train-head", "--device", "gpu"], "unknown device"),
    (["zero-shot", "--images-per-batch", "-1"], "--images-per-batch"),
    (["zero-shot", "--points", "100000"], "less than or equal to 64"),
    (["zero-shot", "--negatives", "-1"], "--negatives"),
    (["zero-shot", "--limit", "-1"], "--limit"),
    (["zero-shot", "--seed", "-1"], "--seed"),
    (["evaluate"], "missing value for --head"),
    (["synth", "out", "--size", "10x10"], "too small"),
    (["synth", "out", "--size", "big"], "WIDTHxHEIGHT"),
    (["synth", "out", "--size", "100000x100000"], "too large"),
    (["extract", "--resources", "GPU=1"], "give --dask too"),
    (["synth", "out", "--train", "-1"], "--train"),
    (["demo", "--size", "x"], "WIDTHxHEIGHT"),
    (["demo", "--train", "0"], "--train"),
    (["zero-shot", "--compose", "nonsense"], "Invalid value for '--compose'"),  # click's own check
    (["extract", "--no-such-option"], "No such option"),
]


@pytest.mark.parametrize("args,needle", BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_bad_value_is_one_line_and_writes_nothing(workdir, args, needle):
    command, *rest = args
    common = {"extract": ["--data", "data", "--cache", "c.zarr", "--split", "val", "--model-type", "tiny"],
              "train-head": ["--cache", "c.zarr", "--out", "run"], "zero-shot": ["--cache", "c.zarr", "--out", "run"],
              "evaluate": ["--cache", "c.zarr"], "synth": [], "demo": ["--out", "demo"]}[command]
    before = snapshot(workdir)
    proc = invoke(command, *common, *rest, cwd=workdir)
    assert_one_line_error(proc, needle)
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1, proc.stderr  # no usage block
    assert snapshot(workdir) == before
    assert sorted(p.name for p in workdir.iterdir()) == ["c.zarr", "data"]


def write_yaml(tmp_path, data) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_yaml_values_are_typed(tmp_path):
    # PyYAML reads `1e-3` as a string and `off` as false: both mean what the user wrote
    cfg = resolve(HeadConfig, write_yaml(tmp_path, "train_head:\n  lr: 1e-3\n  preload: off\n  flip: 'no'\n"))
    assert (cfg.lr, cfg.preload, cfg.flip) == (0.001, "off", False)
    cfg = resolve(HeadConfig, write_yaml(tmp_path, "train_head:\n  flip: true\n"), flip=False)  # --no-flip wins
    assert cfg.flip is False


@pytest.mark.parametrize("text,needle", [
    ("train_head:\n  epochs: ten\n", "train_head.epochs in"),
    ("train_head:\n  epochs: true\n", "not true/false"),
    ("epochz: 3\n", "unknown key(s) epochz; valid top-level keys:"),
    ("trainhead:\n  epochs: 3\n", "sections: extract, zero_shot, clicks, train_head"),
    ("train_head:\n  epoch: 3\n", "unknown key(s) in 'train_head': epoch; valid: cache,"),
    ("train_head: 3\n", "must be a mapping"),
    ("- a\n- b\n", "mapping at the top level"),
    ("a: [\n", "not valid YAML"),
    ("preload: on\n", "preload in"),
])
def test_bad_yaml_is_one_line(tmp_path, text, needle):
    proc = invoke("train-head", "--config", write_yaml(tmp_path, text), "--out", tmp_path / "run")
    assert_one_line_error(proc, needle)
    assert not (tmp_path / "run").exists()


def test_every_option_has_help_default_and_choices():
    for name, command in cli.commands.items():
        for param in command.params:
            if isinstance(param, click.Argument) or param.name == "help":
                continue
            assert param.help, f"{name} {param.opts} has no help"
            assert "PydanticUndefined" not in param.help, f"{name} {param.opts}"
            assert "[default: ]" not in param.help, f"{name} {param.opts} shows an empty default"
    fields = {"extract": ExtractConfig, "zero-shot": ZeroShotConfig, "train-head": HeadConfig, "demo": DemoConfig}
    for name, cls in fields.items():
        helps = {p.name: p.help for p in cli.commands[name].params if isinstance(p, click.Option)}
        for field, info in cls.model_fields.items():
            if info.default is not None and not (info.json_schema_extra or {}).get("argument"):
                assert "[default: " in helps[field], f"{name} --{field} shows no default"
    codec = next(p for p in cli.commands["extract"].params if p.name == "codec")
    assert list(codec.type.choices) == list(CODECS)  # from the registry, listed in --help
    model = next(p for p in cli.commands["extract"].params if p.name == "model_type")
    assert list(model.type.choices) == list(model_types())
    prompt = next(p for p in cli.commands["zero-shot"].params if p.name == "prompt")
    assert list(prompt.type.choices) == [*strategy_names(), "text"]  # text: concept prompts (SAM 3 caches)
    text = invoke("extract", "--help").stdout
    assert "[zstd|blosc-zstd|blosc-lz4|none]" in text and "(default: zstd)" in " ".join(text.split())


def test_one_default_cache_path():
    assert ExtractConfig().cache == ZeroShotConfig().cache == HeadConfig().cache == DEFAULT_CACHE
    assert yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())["cache"] == DEFAULT_CACHE
    workflow = marked("workflow")
    assert set(re.findall(r"--cache (\S+)", workflow)) == {DEFAULT_CACHE}


def test_quiet_hides_progress_bars(tmp_path, synth_root):
    common = ["extract", "--data", synth_root, "--split", "val", "--model-type", "tiny", "--num-workers", "0"]
    loud = invoke(*common, "--cache", tmp_path / "a.zarr", "--limit", "1")
    quiet = invoke(*common, "--cache", tmp_path / "b.zarr", "--limit", "1", "--quiet")
    assert loud.returncode == quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "extract val" in loud.stderr and "img/s" in loud.stdout
    assert "extract val" not in quiet.stderr and "img/s" in quiet.stdout  # the result line stays


def test_the_documented_yaml_example_is_a_valid_config(tmp_path):
    """docs/configuration.md's example: every key valid for the commands it reaches, sections included."""
    text = marked("config-yaml").split("```yaml\n")[1].split("```")[0]
    path = tmp_path / "config.yaml"
    path.write_text(text)
    extract = resolve(ExtractConfig, path)
    head = resolve(HeadConfig, path)
    assert (extract.precision, extract.batch_size, head.epochs, head.flip) == ("bf16", 8, 20, True)


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
