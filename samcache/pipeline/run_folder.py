"""Run folders: who owns them, how they are created, replaced and resumed.

A folder is a samcache run when it holds ``run.json``; the record lists the files the run wrote
(``outputs``), so replacing a run touches those files and nothing else. Rules:
- a new run goes into a new or empty folder;
- a folder holding an earlier run is replaced only with --overwrite: its outputs are set aside
  first and deleted only when the new run has a first result, restored if it fails before;
- a folder that is not a run, or that holds what the command reads, is never written to;
- a command that fails or is interrupted before its first result leaves the folder as it was; a
  kill (no cleanup ran) is undone by the next command given that folder, which restores the
  earlier run an interrupted --overwrite had set aside;
- one command at a time per folder: a lock file ``.<name>.lock`` beside it (as splits have; removed
  when the command leaves no folder); while it is free, a record that says "running" is a run that
  was interrupted.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import warnings

from filelock import FileLock, Timeout

from samcache import fileio
from samcache.errors import SamcacheError, SamcacheWarning
from samcache.pipeline.run_log import LOG, log_line, logging_to
from samcache.pipeline.run_checks import check_out, check_overlap
from samcache.pipeline.runs import RUN_RECORD, SET_ASIDE, RunRecord, read_record, write_record

# outputs of runs recorded before run.json listed them: top-level names, and patterns below
LEGACY_FILES = {"run.json", "config.yaml", "summary.csv", "detailed_results.csv", "metrics.csv", "per_object.csv",
                "curve.png", "report.md", "report.csv", "report_iou.png", "report_clicks.png"}
LEGACY_PATTERNS = [re.compile(p) for p in (r"head_epoch_\d+\.pt", r"visualizations/[^/]+\.png",
                                           r"predictions/[^/]+/[^/]+_labelIds\.png", r"(.*/)?\.[^/]+\.tmp")]


def files_in(path: Path) -> set[str]:
    """Relative paths of every file below ``path`` (the set-aside folder excluded)."""
    if not path.is_dir():
        return set()
    return {str(p.relative_to(path)) for p in path.rglob("*")
            if p.is_file() and SET_ASIDE not in p.relative_to(path).parts}


def enclosing_run(path: str | Path) -> Path | None:
    """The samcache run folder that ``path`` lies in, if any: another command's file must not land there."""
    real = Path(os.path.realpath(path))
    return next((folder for folder in (real, *real.parents) if (folder / RUN_RECORD).is_file()), None)


@dataclass
class RunFolder:
    path: Path
    stage: str
    created: bool  # the folder did not exist before
    before: set[str] = field(default_factory=set)  # files there when the run began: not the run's
    committed: bool = False  # a first result exists: keep the folder whatever happens next
    earlier_outputs: set[str] = field(default_factory=set)  # a resumed run's outputs so far

    def log(self, message: str) -> None:
        """One timestamped line appended to ``run.log`` (the run's own history: command, warnings, epochs, end)."""
        log_line(self.path, message)

    def outputs(self) -> list[str]:
        present = files_in(self.path)  # a resumed head run's --keep may have removed earlier checkpoints
        return sorted((present - self.before) | (self.earlier_outputs & present) | {RUN_RECORD})

    def record(self, record: dict | RunRecord) -> None:
        """Write run.json with the list of files this run wrote (what --overwrite may remove later)."""
        record = record.to_json() if isinstance(record, RunRecord) else record
        self.log(f"status {record.get('status')}" + (f", epochs done {record['epochs_done']}"
                                                      if record.get("epochs_done") else ""))
        write_record(self.path, {**record, "outputs": self.outputs()})

    def commit(self) -> None:
        """A first result exists: from now on the folder is kept, and a replaced run is gone for good."""
        self.committed = True
        shutil.rmtree(self.path / SET_ASIDE, ignore_errors=True)


def _run_outputs(path: Path) -> set[str]:
    """The files of the run in ``path``: as its record lists them, else by the names samcache writes."""
    try:
        listed = read_record(path).get("outputs")
    except SamcacheError:
        listed = None
    present = files_in(path)
    # a write killed before its rename leaves a temporary of samcache's own naming: the run's too
    killed_writes = {f for f in present if fileio.is_temporary(Path(f))}
    if listed is not None:
        return (present & set(listed)) | killed_writes
    return {f for f in present if f in LEGACY_FILES or any(p.fullmatch(f) for p in LEGACY_PATTERNS)}


def _nested_runs(path: Path) -> list[Path]:
    return [d for d in path.iterdir() if d.is_dir() and d.name != SET_ASIDE and (d / RUN_RECORD).is_file()]


def _move(files: set[str], source: Path, target: Path) -> None:
    for name in sorted(files):
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source / name, destination)
    _prune_empty(source)


def _prune_empty(path: Path) -> None:
    """Remove directories left empty below ``path`` (never ``path`` itself)."""
    for directory in sorted((d for d in path.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
        if SET_ASIDE not in directory.relative_to(path).parts and not any(directory.iterdir()):
            directory.rmdir()


def _set_aside(path: Path) -> None:
    """Move the earlier run's outputs (and runs nested in it) into SET_ASIDE."""
    aside = path / SET_ASIDE
    shutil.rmtree(aside, ignore_errors=True)  # left by a run killed before its first result
    aside.mkdir()
    outputs = _run_outputs(path)  # read before its record moves
    # the record first: from here on a run.json in the folder is the new run's (see recover)
    os.replace(path / RUN_RECORD, aside / RUN_RECORD)
    for nested in _nested_runs(path):
        os.replace(nested, aside / nested.name)
        lock = path / f".{nested.name}.lock"  # its folder_lock file goes (and comes back) with it
        if lock.is_file():
            os.replace(lock, aside / lock.name)
    _move(outputs - {RUN_RECORD}, path, aside)


def _restore(path: Path) -> None:
    aside = path / SET_ASIDE
    if aside.is_dir():
        for item in aside.iterdir():
            if item.is_dir() and (item / RUN_RECORD).is_file():
                os.replace(item, path / item.name)
        _move(files_in_aside(aside), aside, path)
        shutil.rmtree(aside, ignore_errors=True)


def files_in_aside(aside: Path) -> set[str]:
    return {str(p.relative_to(aside)) for p in aside.rglob("*") if p.is_file()}


@contextlib.contextmanager
def folder_lock(path: Path) -> Iterator[None]:
    """One samcache command per run folder; a second stops at once with one line."""
    real = Path(os.path.realpath(path))
    lock_path = real.parent / f".{real.name}.lock"
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_path, timeout=0)
        lock.acquire()
    except Timeout:
        raise SamcacheError(f"{path} is in use by another samcache command (lock {lock_path}); wait for it to "
                            f"finish, or choose another folder") from None
    except OSError as exc:
        raise SamcacheError(f"cannot write the run folder {path}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        if not real.exists():  # a refused or undone run: no folder, so no lock file to leave beside it
            lock_path.unlink(missing_ok=True)  # before the release: a command waiting on it gets "in use"
        lock.release()


def recover(path: Path) -> bool:
    """Undo a command killed before its first result (call with the folder's lock held): remove what
    it wrote and put back the earlier run it had set aside. Returns True when something was undone.

    Such a command's record says "running" and lists what was there before it (``kept``); a record
    written after a first result lists its outputs instead, and is never undone here.
    """
    aside = path / SET_ASIDE
    try:
        record = read_record(path)
    except SamcacheError:
        record = {}
    killed = record.get("status") == "running" and record.get("kept") is not None
    if not killed and not aside.is_dir():
        return False
    if "outputs" in record and aside.is_dir():  # the replacing run had its first result: the --overwrite holds
        shutil.rmtree(aside, ignore_errors=True)
        return False
    if killed:
        for name in files_in(path) - set(record["kept"]):
            (path / name).unlink(missing_ok=True)
        _prune_empty(path)
    # else: killed while setting the earlier run aside (its record moves first): only put it back
    restored = aside.is_dir()
    _restore(path)
    what = "the run it was replacing is restored" if restored else "its partial files are removed"
    warnings.warn(f"{path}: an earlier {record.get('stage', 'samcache')} command was interrupted before its first "
                  f"result; {what}", SamcacheWarning)
    return True


def settle(path: str | Path) -> None:
    """Before reading a run folder (report, evaluate): undo a command killed in it before its first result,
    restoring the run an interrupted --overwrite had set aside, as the next command writing there would."""
    path = Path(path)
    if path.is_dir() and ((path / RUN_RECORD).is_file() or (path / SET_ASIDE).is_dir()):
        with folder_lock(path):
            recover(path)


@contextlib.contextmanager
def run_folder(path: str | Path, stage: str, overwrite: bool = False, started: str = "",
               reads: list[str | Path] = ()) -> Iterator[RunFolder]:
    """Create (or take over) a run folder; undo everything if the body fails before ``commit()``.

    ``reads``: the caches, runs or checkpoints the command reads; --out may not overlap them.
    """
    path = Path(path)
    check_overlap(path, list(reads))
    with folder_lock(path):
        recover(path)
        check_out(path, stage, overwrite)
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
            if (path / RUN_RECORD).is_file():
                _set_aside(path)  # --overwrite: kept until the new run has a first result
            folder = RunFolder(path, stage, created, before=files_in(path))
            # "kept": what is not this run's, so that the next command can undo this one if it is killed
            write_record(path, {"stage": stage, "status": "running", "started": started,
                                "kept": sorted(folder.before)})
        except OSError as exc:
            _undo(path, created, set())
            raise SamcacheError(f"cannot write the run folder {path}: {exc.strerror or exc}") from None
        try:
            with logging_to(folder, overwrite):
                yield folder
        except BaseException:
            if not folder.committed:
                _undo(path, created, folder.before)
            raise


def _undo(path: Path, created: bool, before: set[str]) -> None:
    if created:
        shutil.rmtree(path, ignore_errors=True)
        return
    if path.is_dir():
        for name in files_in(path) - before:  # what this run wrote
            (path / name).unlink(missing_ok=True)
        _prune_empty(path)
        _restore(path)


@contextlib.contextmanager
def resumed_folder(path: str | Path, stage: str) -> Iterator[RunFolder]:
    """An existing run of ``stage`` to continue in place: never removed; its earlier outputs stay listed."""
    path = Path(path)
    with folder_lock(path):
        recover(path)
        yield from _resumed(path, stage)


def _resumed(path: Path, stage: str) -> Iterator[RunFolder]:
    try:
        record = read_record(path)
        earlier = set(record.get("outputs") or _run_outputs(path))
        if record["stage"] != stage:
            raise SamcacheError(f"{path} holds a {record['stage']} run, not a {stage} run")
    except SamcacheError as exc:
        if "holds a" in str(exc):
            raise
        earlier = _run_outputs(path)  # a damaged record: its files are still known by their names
    for name in files_in(path):  # temporaries of writes killed in an earlier session of this run
        if fileio.is_temporary(path / name):
            (path / name).unlink(missing_ok=True)
    current = files_in(path)
    folder = RunFolder(path, stage, created=False, before=current - earlier, committed=True,
                       earlier_outputs=(earlier & current) | ({LOG} & current))
    with logging_to(folder, resumed=True):
        yield folder
