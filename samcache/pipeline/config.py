"""Effective configs: dataclass defaults < YAML (top-level keys, then the command's section) < CLI flags.

A YAML file looks like::

    model_type: vit_h            # shared keys apply to every command that has that field
    cache: cache/cityscapes_vit_h.zarr
    extract: {batch_size: 8, precision: bf16}
    train_head: {epochs: 20}
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from pathlib import Path
from typing import Any, TypeVar

import yaml

from samcache.errors import SamcacheError

T = TypeVar("T")
SECTIONS = ("extract", "zero_shot", "train_head", "evaluate", "demo")


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SamcacheError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SamcacheError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SamcacheError(f"{path} must hold a mapping at the top level")
    return data


def resolve(cls: type[T], section: str, config_file: str | Path | None = None, **overrides: Any) -> T:
    """Build ``cls`` from defaults, the YAML file, then every override that is not None."""
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    if config_file is not None:
        data = load_yaml(config_file)
        values.update({k: v for k, v in data.items() if k in names})
        own = data.get(section) or {}
        unknown = sorted(set(own) - names)
        if unknown:
            raise SamcacheError(f"{config_file}: unknown key(s) in '{section}': {', '.join(unknown)}")
        values.update(own)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**values)


def save_config(cfg: Any, path: str | Path, extra: dict | None = None) -> None:
    data = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    data.update(extra or {})
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def new_run_dir(kind: str, root: str | Path = "runs") -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{stamp}-{kind}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(root) / f"{stamp}-{kind}-{suffix}"
    return path


def now_iso() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")
