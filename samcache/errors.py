"""Exception types the CLI turns into one line on stderr (never a traceback).

Modules below ``pipeline/`` never spell a CLI flag: a message names a setting with :func:`setting`, and the
reader words it. ``str(error)`` (a notebook) shows the keyword (``checkpoint``); the CLI shows the flag
(``--checkpoint``) through :meth:`SamcacheError.worded`.
"""
from __future__ import annotations

import re
from typing import Callable

_MARK = "\x1f"  # a unit separator: never in a path or value a user types
_SETTING = re.compile(f"{_MARK}([a-z0-9_]+){_MARK}")


def setting(name: str) -> str:
    """A setting named inside a message, e.g. ``f"needs {setting('checkpoint')}"``."""
    return f"{_MARK}{name}{_MARK}"


def as_flag(name: str) -> str:
    """The CLI's wording of a setting: ``model_type`` -> ``--model-type``."""
    return "--" + name.replace("_", "-")


def word(text: str, name_of: Callable[[str], str] = str) -> str:
    """``text`` with every :func:`setting` marker replaced by ``name_of(name)`` (default: the bare keyword)."""
    return _SETTING.sub(lambda m: name_of(m.group(1)), text)


class SamcacheError(Exception):
    """A user-facing error: bad value, missing or corrupt file, wrong checkpoint, mismatched cache.

    The library states the problem; ``setting`` names the setting that would fix it (e.g. "checkpoint"),
    which the CLI turns into the flag to pass (``--checkpoint``) and a notebook user into the keyword.
    """

    def __init__(self, message: str, setting: str | None = None):
        self.template = message
        self.setting = setting
        super().__init__(word(message))

    def worded(self, name_of: Callable[[str], str] = as_flag) -> str:
        """The message with its settings worded for one reader (the CLI: flags)."""
        text = word(self.template, name_of)
        return f"{text}; pass {name_of(self.setting)}" if self.setting else text


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, carrying advice that is true for the command that was interrupted."""

    def __init__(self, advice: str, exit_code: int = 130):
        super().__init__(advice)
        self.advice, self.exit_code = advice, exit_code


class SamcacheWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints 'warning: ...')."""
