"""Below ``pipeline/`` a message names a setting, never a CLI flag: the CLI words it ``--flag``, a notebook user
reads the keyword. Checked on the source (every string literal, f-strings included) and on one error both ways."""

import ast
import re
from pathlib import Path

import pytest

from conftest import assert_one_line_error, invoke
from samcache.errors import SamcacheError

PACKAGE = Path(__file__).resolve().parents[1] / "samcache"
BELOW_PIPELINE = ("data", "features", "cache", "evaluation")
OWN_CLI = {"official.py"}  # `python -m samcache.evaluation.official` parses its own arguments
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _messages(tree: ast.AST):
    """(line, text) of every string literal that is not a docstring; an f-string's values become ``{}``."""
    skip = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body:
            first = body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip |= {id(v) for v in node.values}
            yield node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.lineno, node.value


def test_no_module_below_pipeline_spells_a_cli_flag():
    found = []
    for layer in BELOW_PIPELINE:
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            if path.name in OWN_CLI:
                continue
            for line, text in _messages(ast.parse(path.read_text())):
                text = re.sub(r"`samcache [^`]*`", "", text)  # a whole command to run is advice, not a setting
                found += [f"{path.relative_to(PACKAGE)}:{line}: {m.group(0)}" for m in FLAG.finditer(text)]
    assert not found, "use samcache.errors.setting(...) instead:\n" + "\n".join(found)


def test_the_checker_sees_a_flag_in_an_f_string():
    tree = ast.parse('def f(x):\n    """--doc is fine"""\n    raise E(f"{x} lies inside --cache {x}")\n')
    assert [FLAG.findall(text) for _, text in _messages(tree)] == [["--cache"]]


def test_one_error_worded_for_the_cli_and_for_a_notebook(tmp_path, synth_root):
    from samcache.cache.store import check_location

    not_a_dir = tmp_path / "file.zarr"
    not_a_dir.write_text("x")
    with pytest.raises(SamcacheError) as caught:
        check_location(str(not_a_dir), str(synth_root))
    assert str(caught.value) == f"cache {not_a_dir} is a file, not a cache directory"
    proc = invoke("extract", "--data", synth_root, "--cache", not_a_dir, "--split", "val", "--model-type", "tiny")
    assert_one_line_error(proc, f"--cache {not_a_dir} is a file, not a cache directory")
