"""train-head --resume: the run's own config.yaml, with only operational settings changeable."""

from __future__ import annotations

from pathlib import Path

from samcache.errors import SamcacheError
from samcache.pipeline.config import flag, resolve
from samcache.pipeline.runs import read_record


def resume_config(cls, config_file, flags: dict):
    """The config a resumed run continues with; flags may change only ``cls.RESUMABLE`` fields."""
    run = Path(flags["resume"])
    if config_file is not None:
        raise SamcacheError(f"--resume takes its settings from {run}/config.yaml; leave out --config")
    if flags.get("out") not in (None, str(run)) or flags.get("overwrite"):
        raise SamcacheError(f"--resume continues {run} in place; leave out --out and --overwrite")
    if not (run / "run.json").is_file():
        why = "no such folder" if not run.exists() else "not a folder" if not run.is_dir() else "no run.json there"
        raise SamcacheError(f"no head run to resume at {run} ({why})")
    try:
        stage = read_record(run)["stage"]
    except SamcacheError:
        stage = "head"  # a damaged record: config.yaml and the checkpoints decide
    if stage != "head":
        raise SamcacheError(f"--resume {run}: it holds a {stage} run, not a head run")
    saved = run / "config.yaml"
    if not saved.is_file():
        raise SamcacheError(f"--resume {run}: no config.yaml there")
    base = resolve(cls, saved)
    given = {k: v for k, v in flags.items() if v is not None}
    cfg = resolve(cls, saved, **given)
    changed = [k for k in cls.model_fields if k not in cls.RESUMABLE and getattr(cfg, k) != getattr(base, k)]
    if changed:
        k = changed[0]
        raise SamcacheError(f"--resume {run}: the run was trained with {k}={getattr(base, k)!r}; "
                            f"{flag(k)} {getattr(cfg, k)!r} would change it (a resumed run may change only "
                            f"{', '.join(flag(n) for n in cls.RESUMABLE if n not in ('resume', 'out', 'overwrite'))})")
    return cfg.model_copy(update={"resume": str(run), "out": str(run), "overwrite": False})
