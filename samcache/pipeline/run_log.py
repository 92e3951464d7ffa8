"""run.log: a run folder's own history, one timestamped line each: the command line and samcache version,
every warning, the epochs, and how the command ended."""

from __future__ import annotations

import contextlib
import datetime
import os
import sys
import warnings
from pathlib import Path
from typing import Iterator

LOG = "run.log"


def log_line(folder: Path, message: str) -> None:
    try:
        with open(folder / LOG, "a") as f:
            f.write(f"{datetime.datetime.now().astimezone().isoformat(timespec='seconds')}  {message}\n")
    except OSError:
        pass  # a log line never costs a run its results


@contextlib.contextmanager
def logging_to(folder, overwrite: bool = False, resumed: bool = False) -> Iterator[None]:
    """run.log: the command line and samcache version, every warning, and how the command ended."""
    from samcache import __version__

    verb = "resumed" if resumed else ("started (--overwrite)" if overwrite else "started")
    folder.log(f"{folder.stage} {verb}: samcache {__version__}, python {sys.version.split()[0]}, "
               f"cwd {os.getcwd()}, command: {' '.join(sys.argv)}")
    shown = warnings.showwarning

    def show(message, category, *args, **kwargs):
        folder.log(f"warning: {message}")
        return shown(message, category, *args, **kwargs)

    warnings.showwarning = show
    try:
        yield
    except KeyboardInterrupt:
        folder.log("interrupted")
        raise
    except BaseException as exc:
        folder.log(f"error: {exc}")
        raise
    finally:
        warnings.showwarning = shown
