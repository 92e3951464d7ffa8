"""The model-family seam, read from the source with ``ast``: each family is its own package and imports no other
family's; no cache, evaluation or pipeline module imports a family package or names a family's feature array.
(No message below pipeline/ spells a CLI flag: ``test_messages_name_settings``.)"""

import ast
from pathlib import Path

import pytest

from samcache.errors import SamcacheError
from samcache.features.families import FAMILIES

PACKAGE = Path(__file__).parent.parent / "samcache"


def _family_packages() -> dict[str, str]:
    """family name -> its package (the parent of its backend module), for samcache's own families."""
    out = {}
    for family in FAMILIES.values():
        module = family.backend.split(":")[0]
        if module.startswith("samcache.features."):
            out[family.name] = module.rsplit(".", 1)[0]
    return out


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, with ``from x import y`` as x and x.y."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_builtin_families_are_one_package_each():
    packages = _family_packages()
    assert set(packages) >= {"sam", "sam2", "sam3", "sam3_tiny"}
    assert len({packages["sam"], packages["sam2"], packages["sam3"]}) == 3 and packages["sam3"] == packages["sam3_tiny"]
    assert all(p != "samcache.features" for p in packages.values()), packages
    for package in set(packages.values()):
        assert (PACKAGE.parent / package.replace(".", "/") / "__init__.py").is_file(), package


def test_families_never_import_each_other():
    packages = set(_family_packages().values())
    crossing = []
    for path in PACKAGE.rglob("*.py"):
        mine = [p for p in packages if _inside(_module(path), p)]
        if mine:
            crossing += [(_module(path), m) for m in _imports(path)
                         for other in packages - set(mine) if _inside(m, other)]
    assert not crossing, crossing


def test_no_cache_evaluation_or_pipeline_module_imports_a_family_or_names_its_arrays():
    packages = set(_family_packages().values())
    arrays = {name for f in FAMILIES.values() for name in f.features} - {"embeddings"}  # format-1 caches: SAM 1
    found = []
    for layer in ("cache", "evaluation", "pipeline"):
        for path in (PACKAGE / layer).rglob("*.py"):
            found += [(_module(path), m) for m in _imports(path) for p in packages if _inside(m, p)]
            strings = {n.value for n in ast.walk(ast.parse(path.read_text()))
                       if isinstance(n, ast.Constant) and isinstance(n.value, str)}
            found += [(_module(path), name) for name in arrays & strings]
    assert not found, found


def test_a_missing_cuda_device_names_the_setting():
    import torch

    from samcache.features.device import resolve_device

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(SamcacheError) as e:
        resolve_device("cuda:1")
    assert str(e.value) == "device cuda:1 was requested but no CUDA device is available"
    assert e.value.worded() == "--device cuda:1 was requested but no CUDA device is available"  # the CLI's line
