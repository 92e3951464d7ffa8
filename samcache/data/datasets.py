"""Datasets as data: one registration per dataset, read by the CLI (``--dataset``) and by every layer.

An entry is torch- and numpy-free (``samcache --help`` lists the names without importing a reader); its
``Dataset`` subclass (``samcache.data.dataset``) is imported when a dataset is first used, as a model family's
backend is. Adding a dataset is one module (``samcache/data/<name>.py``: its layout, readers and class table)
and one ``register(DatasetEntry(...))``; nothing else in samcache names a dataset.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from samcache.errors import SamcacheError, setting

DEFAULT_DATASET = "cityscapes"  # what --dataset is when not given, and what caches before format 3 hold


@dataclass(frozen=True)
class DatasetEntry:
    name: str  # --dataset, the cache's ``dataset`` attribute
    reader: str  # "module:Class": the Dataset subclass
    conditions: tuple[str, ...] = ()  # --condition choices, the default first (ACDC: all, fog, ...)


DATASETS: dict[str, DatasetEntry] = {}
_CLASSES: dict[str, type] = {}


def register(entry: DatasetEntry) -> DatasetEntry:
    """Add a dataset (a later entry of the same name replaces it, so a plugin may override a built-in)."""
    DATASETS[entry.name] = entry
    _CLASSES.pop(entry.name, None)
    return entry


def dataset_names() -> tuple[str, ...]:
    """Every registered dataset, the default first (the CLI's choices)."""
    return tuple(DATASETS)


def condition_names() -> tuple[str, ...]:
    """Every condition any registered dataset has (the CLI's --condition choices)."""
    return tuple(dict.fromkeys(c for e in DATASETS.values() for c in e.conditions))


def get_dataset(name: str = DEFAULT_DATASET, condition: str | None = None):
    """The ``Dataset`` named ``name`` (its reader imported on first use), for ``condition`` where it has them."""
    if name not in DATASETS:
        raise SamcacheError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} ({setting('dataset')})")
    if name not in _CLASSES:
        module, cls = DATASETS[name].reader.split(":")
        found = getattr(importlib.import_module(module), cls)
        if tuple(found.conditions) != DATASETS[name].conditions:  # the CLI offers the entry's, the reader its own
            raise ValueError(f"dataset {name}: the entry's conditions {DATASETS[name].conditions} are not its reader's "
                             f"{tuple(found.conditions)}")
        _CLASSES[name] = found
    return _CLASSES[name](condition)


def dataset_of(attrs: dict):
    """The dataset a cache's root attributes name (caches before format 3 hold Cityscapes)."""
    name = attrs.get("dataset", DEFAULT_DATASET)
    if name not in DATASETS:
        raise SamcacheError(f"the cache holds dataset {name!r}, which this samcache does not know (it knows "
                            f"{', '.join(DATASETS)}); a newer samcache or a plugin may have written it")
    return get_dataset(name, attrs.get("condition"))


def _register_builtin() -> None:
    """samcache's own datasets, in the CLI's order."""
    register(DatasetEntry("cityscapes", "samcache.data.cityscapes:Cityscapes"))
    register(DatasetEntry("gta5", "samcache.data.gta5:GTA5"))
    register(DatasetEntry("bdd100k", "samcache.data.bdd100k:BDD100K"))
    register(DatasetEntry("acdc", "samcache.data.acdc:ACDC", conditions=("all", "fog", "night", "rain", "snow")))


_register_builtin()
