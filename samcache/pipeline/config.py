"""Typed configs, one mechanism for every command: defaults < YAML file < command-line flags.

Each command's settings are a pydantic model (``pipeline/configs/``). Its fields are the one
place for a setting's type, default, range, choices and help text: the click options are
generated from them (``cli_options.py``), YAML values are validated by them, and any bad value
becomes one line naming where it came from. A YAML file looks like::

    model_type: vit_h            # top-level keys apply to every command that has that field
    cache: cache/cityscapes_vit_h.zarr
    extract: {batch_size: 8, precision: bf16}
    train_head: {epochs: 20}
"""

from __future__ import annotations

import datetime as _dt
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Sequence, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from samcache import fileio
from samcache.errors import SamcacheError

T = TypeVar("T", bound="StageConfig")


class StageConfig(BaseModel):
    """Base of every command's settings: unknown keys and bad values are errors, never ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    SECTION: typing.ClassVar[str] = ""  # the YAML section of this command
    # modes of one invocation (train-head --resume), never settings: a file that carried them would act on
    # another run in place; config.yaml records them as null
    CLI_ONLY: typing.ClassVar[tuple[str, ...]] = ()

    def dump(self) -> dict:
        return self.model_dump(mode="json")


REGISTRY: dict[str, type[StageConfig]] = {}  # section -> config class, filled by pipeline/configs/


def register(cls: type[T]) -> type[T]:
    REGISTRY[cls.SECTION] = cls
    return cls


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class RegistryChoices:
    """Choices read from a registry each time they are needed (a value to check, --help), never frozen when
    the configs are imported: a model family registered later is offered. ``first`` come before them, ``last``
    after them."""

    source: Callable[[], Sequence[str]]
    first: tuple[str, ...] = ()
    last: tuple[str, ...] = ()
    describe: Callable[[], str] | None = None  # the choices' help, read when --help is drawn ({choices} in it)

    def __call__(self) -> tuple[str, ...]:
        return (*self.first, *self.source(), *self.last)


def registry_choice(source: Callable[[], Sequence[str]], *first: str, last: tuple[str, ...] = (),
                    describe: Callable[[], str] | None = None) -> Any:
    """A str field refused, as a Literal would be (same message), unless it is one of the registry's choices.
    ``describe``: the choices' help, put where the field's description says ``{choices}``."""
    choices = RegistryChoices(source, first, last, describe)

    def check(value):
        options = choices()
        if value not in options:
            expected = (", ".join(map(repr, options[:-1])) + " or " * (len(options) > 1) + repr(options[-1])
                        if options else "absent (no choice is registered)")
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value

    return Annotated[str, BeforeValidator(check), choices]


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML lets a repeated key silently win; a config file with one is refused, naming key and line."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: PyYAML's own error says so
                break
            if repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} on line {key_node.start_mark.line + 1} (first on line "
                                f"{seen[key]}); a repeated key would silently replace the first", key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise SamcacheError(f"config file not found: {path}")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.constructor.ConstructorError as exc:
        raise SamcacheError(f"{path}: {exc.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SamcacheError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SamcacheError(f"{path} must hold a mapping at the top level")
    return data


def _file_values(cls: type[StageConfig], path: str | Path) -> tuple[dict, dict]:
    """(values, sources) that ``path`` gives ``cls``; unknown keys anywhere are errors listing the valid ones."""
    data = load_yaml(path)
    shared = set().union(*(c.model_fields for c in REGISTRY.values()))
    unknown = sorted(str(k) for k in data if k not in shared and k not in REGISTRY)
    if unknown:
        raise SamcacheError(f"{path}: unknown key(s) {', '.join(unknown)}; valid top-level keys: "
                            f"{', '.join(sorted(shared))}; sections: {', '.join(REGISTRY)}")
    values = {k: v for k, v in data.items() if k in cls.model_fields and k not in REGISTRY}  # sections are not values
    sources = {k: f"{k} in {path}" for k in values}
    own = data.get(cls.SECTION)
    if own is not None:
        if not isinstance(own, dict):
            raise SamcacheError(f"{path}: section '{cls.SECTION}' must be a mapping")
        unknown = sorted(str(k) for k in own if k not in cls.model_fields)
        if unknown:
            raise SamcacheError(f"{path}: unknown key(s) in '{cls.SECTION}': {', '.join(unknown)}; valid: "
                                f"{', '.join(cls.model_fields)}")
        values.update(own)
        sources.update({k: f"{cls.SECTION}.{k} in {path}" for k in own})
    for name in cls.CLI_ONLY:
        if values.get(name) is not None:
            raise SamcacheError(f"{sources[name]}: {flag(name)} is a command-line flag only (from a file it would "
                                f"act on {values[name]} in place); remove it from the file")
    return values, sources


def _where(cls: type[StageConfig], name: str) -> str:
    """How the user wrote a field: --flag-name, or an ARGUMENT."""
    field = cls.model_fields.get(name)
    extra = (field.json_schema_extra or {}) if field is not None else {}
    return name.upper() if isinstance(extra, dict) and extra.get("argument") else flag(name)


def _describe(cls: type[StageConfig], error: dict, sources: dict) -> str:
    if not error["loc"]:  # a rule across fields: its message names them
        return error["msg"].removeprefix("Value error, ")
    name = str(error["loc"][0])
    where = sources.get(name, _where(cls, name))
    if error["type"] == "missing":
        return f"missing value for {where}"
    message = error["msg"].removeprefix("Value error, ")
    return f"invalid value for {where}: {message} (got {error.get('input')!r})"


def build(cls: type[T], values: dict, sources: dict | None = None) -> T:
    try:
        return cls(**values)
    except ValidationError as exc:
        raise SamcacheError("; ".join(_describe(cls, e, sources or {}) for e in exc.errors())) from None


def resolve(cls: type[T], config_file: str | Path | None = None, **overrides: Any) -> T:
    """Build ``cls`` from defaults, the YAML file, then every override that is not None."""
    values, sources = _file_values(cls, config_file) if config_file is not None else ({}, {})
    given = {k: v for k, v in overrides.items() if v is not None}
    values.update(given)
    sources.update({k: _where(cls, k) for k in given})
    return build(cls, values, sources)


PATH_FIELDS = ("data", "cache", "checkpoint", "out", "head", "resume", "out_dir", "h5", "runs", "refine_with")


def absolute_path(value):
    """A local path made absolute (a run's files name what they read from any directory); URLs as they are."""
    if value is None or "://" in str(value):  # remote stores keep their URL
        return value
    if isinstance(value, list):
        return [absolute_path(v) for v in value]
    return os.path.abspath(value)


STORAGE: dict | None = None  # the storage: section this process uses (cli_options.use_storage), saved with runs


def save_config(cfg: StageConfig, path: str | Path, device=None) -> None:
    """The effective config of a run, loadable again with --config from any directory: paths absolute,
    and ``device`` the one the run used (``auto`` resolved), when given."""
    data = {**cfg.dump(), **{name: None for name in cfg.CLI_ONLY}}
    paths = [k for k in PATH_FIELDS if k in data and typing.get_origin(base_type(type(cfg).model_fields[k].annotation)[0])
             is not Literal]  # train-head's `head` is a choice, evaluate's a file
    data.update({k: absolute_path(data[k]) for k in paths})
    if device is not None and "device" in data:
        data["device"] = str(device)
    if STORAGE is not None:
        data["storage"] = STORAGE
    fileio.write_text(path, yaml.safe_dump(data, sort_keys=False))


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


def base_type(annotation):
    """(python type or Literal choices, is_list) with Optional/Annotated stripped."""
    is_list = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        elif origin is list:
            is_list, annotation = True, typing.get_args(annotation)[0]
        else:
            return annotation, is_list
