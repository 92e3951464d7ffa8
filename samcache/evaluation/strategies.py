"""Prompt strategies by name: what `zero-shot --prompt` offers, without importing the samplers.

A strategy is a name, a line of help, and a sampler: ``sampler(region: prompts.ClassRegion) -> list[Prompt]``,
given as a function or as ``"module:function"`` (imported only when prompts are sampled, so `--help` and
config checks stay light). Register one with ``register_strategy`` (``samcache.register_strategy``); the CLI
reads the names when a command runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Union

from samcache.errors import SamcacheError, setting

Sampler = Union[Callable, str]


@dataclass(frozen=True)
class Strategy:
    name: str
    help: str
    sampler: Sampler
    per_class_draw: bool = False  # one uniform number drawn per evaluated class, present or not (see prompts.py)


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str, help: str, sampler: Sampler, per_class_draw: bool = False) -> Strategy:
    """Offer ``name`` to `zero-shot --prompt`; ``sampler(region) -> list[Prompt]`` (see ``prompts.ClassRegion``).
    Registering a name again replaces it (a notebook cell run twice); the built-in names stay samcache's."""
    if name in BUILTIN or name == "text":  # text: SAM 3's noun phrases, not sampled from the ground truth
        raise SamcacheError(f"prompt strategy {name!r} is samcache's own; register yours under another name")
    STRATEGIES[name] = strategy = Strategy(name, help, sampler, per_class_draw)
    return strategy


def strategy_names() -> tuple[str, ...]:
    return tuple(STRATEGIES)


def describe_strategies() -> str:
    """Each strategy's help, for `zero-shot --help` (settings named with ``errors.setting``)."""
    return "; ".join(f"{s.name}: {s.help}" for s in STRATEGIES.values())


def get_strategy(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise SamcacheError(f"unknown prompt strategy {name!r} (registered: {', '.join(STRATEGIES)})")
    return STRATEGIES[name]


def sampler_of(name: str) -> Callable:
    """The strategy's sampler, imported on first use."""
    sampler = get_strategy(name).sampler
    if isinstance(sampler, str):
        module, _, function = sampler.partition(":")
        sampler = getattr(importlib.import_module(module), function)
    return sampler


_HERE = "samcache.evaluation.prompts:"
BUILTIN = {
    "random": Strategy("random", "one uniform point per class", _HERE + "random_point", per_class_draw=True),
    "center": Strategy("center", "each class's point farthest from its boundary", _HERE + "center"),
    "per-instance": Strategy("per-instance", "one center per instance (things) or connected component (stuff)",
                             _HERE + "per_instance"),
    "multi": Strategy("multi", f"{setting('points')} positives and {setting('negatives')} points of other classes",
                      _HERE + "multi"),
    "box": Strategy("box", "each class's bounding box", _HERE + "box"),
}
STRATEGIES.update(BUILTIN)
