"""The README and docs/ cannot rot: their commands parse against the CLI, the workflow block runs as written, and
every Python block is run by a test."""

import re
import shlex
from pathlib import Path

import click

from conftest import invoke
from docs_text import DOCS, ROOT, docs_text, marked
from samcache.cache.reader import open_cache
from samcache.pipeline.cli import cli

# the real-data block, made runnable here: tiny model instead of the ViT-H checkpoint, 1 epoch instead of 20
SUBSTITUTIONS = [
    ("--model-type vit_h --checkpoint checkpoints/sam_vit_h_4b8939.pth --precision bf16", "--model-type tiny"),
    ("--checkpoint checkpoints/sam_vit_h_4b8939.pth ", ""),
    ("--epochs 20", "--epochs 1"),
    ("--max-clicks 20", "--max-clicks 2 --limit 1"),
    ("head_epoch_20.pt", "head_epoch_1.pt"),
]


def readme_commands(text: str) -> list[str]:
    """Every `samcache ...` line inside a ```bash block (comments dropped)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("samcache "):
                commands.append(line)
    return commands


def test_every_readme_command_parses_against_the_cli():
    commands = readme_commands(docs_text())
    assert len(commands) >= 25
    for line in commands:
        name, *args = shlex.split(line)[1:]
        assert name in cli.commands, line
        command = cli.commands[name]
        try:
            command.make_context(name, args)  # unknown options, bad choices or types raise here
        except click.exceptions.UsageError as exc:
            raise AssertionError(f"documented command does not parse: {line}\n{exc}") from None


def test_the_workflow_block_runs_as_written(tmp_path, monkeypatch):
    block = marked("workflow")
    commands = readme_commands(block)
    assert [shlex.split(c)[1] for c in commands] == ["extract", "extract", "info", "zero-shot", "zero-shot",
                                                     "clicks", "train-head", "evaluate", "report", "extract"]
    monkeypatch.chdir(tmp_path)
    invoke("synth", "data/cityscapes", "--train", 3, "--val", 2, "--test", 1, "--size", "512x256", check=True)
    for line in commands:
        for old, new in SUBSTITUTIONS:
            line = line.replace(old, new)
        assert "--model-type vit_h" not in line and "--epochs 20" not in line, line
        proc = invoke(*shlex.split(line)[1:], check=True)
        if line.startswith("samcache report"):
            assert "RANDOM weights" in proc.stdout
    cache = open_cache("cache/cityscapes_vit_h.zarr")
    assert cache.splits == ["test", "train", "val"]
    assert all(cache.split(s).done_mask().all() for s in cache.splits)
    for path in ("runs/zs-random/summary.csv", "runs/zs-center/summary.csv", "runs/clicks/curve.png",
                 "runs/head/head_epoch_1.pt",
                 "runs/report/report.md", "runs/report/report_iou.png"):
        assert Path(path).is_file(), path


def test_every_python_block_in_the_docs_is_run_by_a_test():
    """A ```python block must sit inside a ``<!-- name:start -->`` marker that some test runs (``code("name")``)."""
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for doc in DOCS:
        text = doc.read_text()
        for block in re.finditer(r"```python\n", text):
            opened = re.findall(r"<!-- ([\w-]+):start -->", text[:block.start()])
            closed = re.findall(r"<!-- ([\w-]+):end -->", text[:block.start()])
            inside = [name for name in opened if name not in closed]
            where = f"{doc.name}, line {text[:block.start()].count(chr(10)) + 1}"
            assert inside, f"a Python block outside any marked block: {where}"
            assert f'"{inside[-1]}"' in tests, f"no test runs the block marked {inside[-1]!r} ({where})"


def test_the_readme_opens_with_the_two_commands_and_stays_short():
    readme = (ROOT / "README.md").read_text()
    first = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    assert [line.split("#")[0].strip() for line in first.strip().splitlines()] == ["make demo", "make test"]
    assert len(readme.splitlines()) <= 200
    for link in re.findall(r"\]\(((?:docs|benchmarks)/[^)#]+)\)", readme):
        assert (ROOT / link).is_file(), link
