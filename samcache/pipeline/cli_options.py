"""Click options generated from a command's config fields: their flags, types, choices, defaults and help.

The config classes (``configs/``) are the one place for all of it; this module only words it for click.
"""

from __future__ import annotations

import functools
import typing
from typing import Callable, Literal, TypeVar

import click

from samcache.errors import as_flag, word
from samcache.pipeline.config import RegistryChoices, StageConfig, base_type, flag, resolve

T = TypeVar("T", bound=StageConfig)


class RegistryChoice(click.Choice):
    """A click.Choice whose choices are read from a registry whenever click needs them (parsing, --help)."""

    def __init__(self, choices: RegistryChoices):
        self.registry = choices
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:
        return self.registry()


class LiveHelpOption(click.Option):
    """An option whose help is drawn when --help is: a registry's choices, registered after import, explained."""

    def __init__(self, *args, live_help: Callable[[], str], **kwargs):
        super().__init__(*args, **kwargs)
        self.live_help = live_help

    def get_help_record(self, ctx):
        self.help = self.live_help()
        return super().get_help_record(ctx)


def _constraints(annotation) -> list:
    """The Field constraints inside an Optional[Annotated[...]] (pydantic keeps only the outer ones)."""
    found = []
    for arg in typing.get_args(annotation):
        if typing.get_origin(arg) is typing.Annotated:
            found += [m for a in typing.get_args(arg)[1:] for m in getattr(a, "metadata", [a])]
    return found


def _bounds(field) -> str:
    """'  [1<=x<=64]' for a number with an upper bound (a lower one alone is said by the description)."""
    metadata = [*field.metadata, *_constraints(field.annotation)]
    low = next((f"{m.ge}<=" for m in metadata if hasattr(m, "ge")), "") or \
        next((f"{m.gt}<" for m in metadata if hasattr(m, "gt")), "")
    high = next((f"<={m.le}" for m in metadata if hasattr(m, "le")), "")
    return f"  [{low}x{high}]" if high else ""


def _option(name: str, field) -> Callable:
    """One click option; its default stays None so that a YAML value is not masked (shown in the help)."""
    extra = field.json_schema_extra or {}
    base, is_list = base_type(field.annotation)
    default = field.default
    if extra.get("argument"):
        return click.argument(name, nargs=-1 if is_list else 1, required=True)
    if field.is_required():
        shown = None
    elif base is bool:
        shown = "yes" if default else "no"
    else:
        shown = None if default is None else (", ".join(map(str, default)) or "none") if isinstance(default, list) \
            else str(default)
    help_text = (field.description or "") + _bounds(field) + (f"  [default: {shown}]" if shown is not None else "")
    if base is bool:
        return click.option(f"{flag(name)}/--no-{name.replace('_', '-')}", name, default=None, help=help_text)
    kwargs: dict = {"default": None, "help": help_text}
    registry = next((m for m in [*field.metadata, *_constraints(field.annotation)] if isinstance(m, RegistryChoices)),
                    None)
    if registry is not None:
        kwargs["type"] = RegistryChoice(registry)
        if registry.describe is not None:
            kwargs.update(cls=LiveHelpOption, live_help=lambda: word(help_text.replace("{choices}", registry.describe()),
                                                                     as_flag))
    elif typing.get_origin(base) is Literal:
        kwargs["type"] = click.Choice([str(a) for a in typing.get_args(base)])
    elif base in (int, float):
        kwargs["type"] = base
    if is_list:
        kwargs["multiple"] = True
    return click.option(*extra.get("flags", ()), flag(name), name, **kwargs)


def command_options(cls: type[StageConfig], config_option: bool = True):
    """Decorate a click command with one option per field (plus --config, --quiet); the command
    receives ``(cfg, quiet)``, where cfg is the validated config."""

    def decorate(f: Callable) -> Callable:
        @functools.wraps(f)
        def callback(config_file=None, quiet=False, **kwargs):
            kwargs = {k: (list(v) or None) if isinstance(v, tuple) else v for k, v in kwargs.items()}
            use_storage(config_file)
            return f(cfg_builder(cls, config_file, kwargs), quiet)

        wrapped = callback
        for name, field in reversed(list(cls.model_fields.items())):
            if (field.json_schema_extra or {}).get("cli", True):
                wrapped = _option(name, field)(wrapped)
        wrapped = click.option("--quiet", "-q", is_flag=True, help="No progress bars or step messages; "
                               "results and errors are still printed.")(wrapped)
        if config_option:
            wrapped = click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                                   help=f"YAML file: top-level keys, then its '{cls.SECTION}' section; "
                                        f"flags on the command line win.")(wrapped)
        return wrapped

    return decorate


def use_storage(config_file) -> None:
    """The config's ``storage:`` section (remote caches) for this process; recorded in every saved config."""
    from samcache.pipeline import config
    from samcache.pipeline.configs.storage import StorageConfig

    storage = resolve(StorageConfig, config_file)
    config.STORAGE = storage.dump() if storage.given() else None
    if storage.given():
        from samcache.cache.stores import configure_kinds

        configure_kinds(storage.dump())


def cfg_builder(cls: type[T], config_file, flags: dict) -> T:
    """Hook for commands that pick their config file themselves (train-head --resume)."""
    hook = getattr(cls, "from_cli", None)
    if hook is not None:
        return hook(config_file, flags)
    return resolve(cls, config_file, **flags)
