"""Model families as data: one torch-free descriptor per family, and a registry of them.

A descriptor (``samcache.features.family.Family``) says everything that code outside the family's own
package needs to know: its model types, the feature arrays the cache holds for an image, the encoder's
input frame, the preprocessing constants, the decoder's mask threshold and low-res size, its official
checkpoints, and which module implements it. The cache schema, readers, datasets, heads and reports read
descriptors; only the backend module imports torch and the upstream package, and only when it is first
used (``backend_for``), as timm registers models.

Adding a family is one package: ``<family>/__init__.py`` (its variant table and descriptor, torch-free)
and ``<family>/backend.py`` (a ``Backend`` subclass, see ``samcache.features.backend``); then
``register(Family(...))``. Families never import each other.
"""

from __future__ import annotations

import importlib

from samcache.errors import SamcacheError
from samcache.features.family import Family


FAMILIES: dict[str, Family] = {}
_BACKENDS: dict[str, object] = {}


def register(family: Family) -> Family:
    """Add a family; its backend module is imported only when ``backend_for`` first needs it."""
    clash = set(family.model_types) & {t for f in FAMILIES.values() for t in f.model_types}
    if family.name in FAMILIES or clash:
        raise ValueError(f"family {family.name!r} or model types {sorted(clash)} registered twice")
    if family.main_feature not in family.features:
        raise ValueError(f"{family.name}: main feature {family.main_feature!r} is not one of its features")
    FAMILIES[family.name] = family
    return family


def model_types() -> tuple[str, ...]:
    """Every registered model type, family by family (the CLI's choices)."""
    return tuple(t for f in FAMILIES.values() for t in f.model_types)


def family_of(model_type: str) -> Family:
    for family in FAMILIES.values():
        if model_type in family.model_types:
            return family
    raise SamcacheError(f"unknown model type {model_type!r}; choose one of {', '.join(model_types())}")


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        raise SamcacheError(f"unknown model family {name!r} (this samcache knows {', '.join(FAMILIES)}); "
                            f"a newer samcache may have written this cache")
    return FAMILIES[name]


def backend_for(model_type_or_family: str):
    """The family's ``Backend`` (imported and built once), from a model type or a family name."""
    family = FAMILIES.get(model_type_or_family) or family_of(model_type_or_family)
    if family.name not in _BACKENDS:
        module, cls = family.backend.split(":")
        _BACKENDS[family.name] = getattr(importlib.import_module(module), cls)(family)
    return _BACKENDS[family.name]


def _register_builtin() -> None:
    """samcache's own families, in the CLI's order; their packages' ``__init__`` are torch-free data."""
    from samcache.features import sam1, sam2, sam3

    for family in (sam1.SAM, sam2.SAM2, sam3.SAM3, sam3.SAM3_TINY):
        register(family)


_register_builtin()
