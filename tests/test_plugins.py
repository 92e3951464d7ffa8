"""SAMCACHE_PLUGINS: the `samcache` command started from a shell sees what a plugin module registers (here a
prompt strategy, with its help), and a plugin that cannot be imported is one line."""

import subprocess
import sys

import pytest

from conftest import assert_one_line_error
from samcache.errors import SamcacheError
from samcache.evaluation import strategies

PLUGIN = '''
import numpy as np
import samcache
from samcache.evaluation.prompts import Prompt

def topmost(region):
    ys, xs = np.nonzero(region.mask)
    return [Prompt(np.array([[xs[0], ys[0]]], dtype=float), np.ones(1, np.int64))]

samcache.register_strategy("topmost", "the class's topmost pixel", topmost)
'''


def _samcache(tmp_path, plugins: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path), "SAMCACHE_PLUGINS": plugins}
    return subprocess.run([sys.executable, "-m", "samcache", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path)


def test_a_plugin_strategy_is_offered_and_explained_by_the_shell_command(tmp_path):
    (tmp_path / "myplugin.py").write_text(PLUGIN)
    proc = _samcache(tmp_path, "myplugin", "zero-shot", "--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "[random|center|per-instance|multi|box|topmost|text]" in text
    assert "topmost: the class's topmost pixel" in text and "multi: --points positives" in text
    assert "topmost" not in _samcache(tmp_path, "", "zero-shot", "--help").stdout  # only where it is loaded


def test_a_plugin_that_cannot_be_imported_is_one_line(tmp_path):
    (tmp_path / "broken.py").write_text("raise RuntimeError('half-written plugin')\n")
    assert_one_line_error(_samcache(tmp_path, "broken", "info", "--cache", "x.zarr"),
                          "SAMCACHE_PLUGINS: cannot import broken (RuntimeError: half-written plugin)")
    assert_one_line_error(_samcache(tmp_path, "no_such_module", "info", "--cache", "x.zarr"),
                          "cannot import no_such_module (ModuleNotFoundError")


def test_registering_again_replaces_and_builtins_stay(monkeypatch):
    monkeypatch.setattr(strategies, "STRATEGIES", dict(strategies.STRATEGIES))
    strategies.register_strategy("mine", "first", lambda region: [])
    strategies.register_strategy("mine", "second", lambda region: [])  # a notebook cell run twice
    assert strategies.get_strategy("mine").help == "second"
    with pytest.raises(SamcacheError, match="samcache's own"):
        strategies.register_strategy("center", "mine", lambda region: [])
