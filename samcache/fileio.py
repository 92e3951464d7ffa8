"""Atomic file writes: a reader (or a re-run after a kill) sees the old file or the new one, never half."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: files get the usual permissions, not mkstemp's 0600


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """``writer(tmp_path)`` fills the file (torch.save, Image.save, csv...), then it is renamed into place."""
    with atomic_path(path) as tmp:
        writer(tmp)


def is_temporary(path: Path) -> bool:
    """Leftovers of a write killed before its rename (safe to remove)."""
    return path.name.startswith(".") and path.name.endswith(".tmp")
