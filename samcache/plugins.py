"""Extensions the CLI loads before it runs a command: ``SAMCACHE_PLUGINS=mypkg.strategies,mypkg.stages``.

A plugin is a module whose import registers what it adds (a prompt strategy, a model family, a stage, a store
kind: docs/extending.md). A notebook or script registers by importing it; the `samcache` command, started from a
shell, imports the modules this variable names, so the same registrations hold there (and in its DataLoader and
Dask workers started on this machine, which inherit the process).
"""

from __future__ import annotations

import importlib
import os

from samcache.errors import SamcacheError

ENV = "SAMCACHE_PLUGINS"


def load_plugins() -> list[str]:
    """Import every module ``SAMCACHE_PLUGINS`` names (comma-separated); one that fails is one line."""
    names = [name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except SamcacheError:
            raise
        except Exception as exc:  # a plugin's own bug or a missing module: named, never a traceback
            raise SamcacheError(f"{ENV}: cannot import {name} ({type(exc).__name__}: {exc})") from None
    return names
