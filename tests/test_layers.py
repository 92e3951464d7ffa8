"""Imports flow one way: data -> features -> cache -> evaluation -> pipeline (and the CLI), with no circle.

Read from the source with ``ast`` (imports inside functions count too), so a lazy import cannot hide an
upward dependency, and imports under ``if TYPE_CHECKING:`` count as well: two modules that name each other,
one lazily and one for its types only, are still a circle (the split between them is wrong), within one layer
as much as across layers.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "samcache"
LAYERS = {"data": 1, "features": 2, "cache": 3, "evaluation": 4, "pipeline": 5}
BASE = 0  # samcache/errors.py, messages.py, fileio.py, procs.py, choices.py: used everywhere, import no layer
STAGES = {"extract", "zero_shot", "clicks", "train_head", "evaluate", "report"}  # (dask_extract is extract's)


def _module(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, typing_too: bool = True) -> set[str]:
    """Every samcache module ``path`` imports: at the top, in a function, and (unless not ``typing_too``) for
    type checkers only (``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if not typing_too and isinstance(node, ast.If) and _names_type_checking(node.test):
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] == "samcache"}


def _names_type_checking(test: ast.expr) -> bool:
    """``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return BASE
    return LAYERS.get(parts[1], 6 if parts[1] == "__main__" else BASE)


def _graph(package: Path = PACKAGE, typing_too: bool = True) -> dict[str, set[str]]:
    modules = {_module(p, package): p for p in package.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path, typing_too):
            while imported not in modules and "." in imported:  # `from pkg import name` names a symbol
                imported = imported.rsplit(".", 1)[0]
            if imported in modules and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = [(m, t) for m, targets in _graph().items() if m != "samcache"
              for t in targets if _layer(t) > _layer(m) and t != "samcache"]
    assert not upward, upward


def test_stages_do_not_import_each_other():
    stage = lambda m: m.startswith("samcache.pipeline.") and m.rsplit(".", 1)[1] in STAGES  # noqa: E731
    crossing = [(m, t) for m, targets in _graph().items() if stage(m) for t in targets if stage(t)]
    assert not crossing, crossing


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    cycles = []

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_import_circle():
    graph = _graph()
    graph["samcache"] = set()  # the package's lazy names are strings, not imports
    assert not _cycles(graph), _cycles(graph)


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "samcache" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "samcache"


def test_the_circle_check_sees_lazy_and_type_only_circles_within_a_layer(tmp_path):
    """A circle in one layer, closed by an import inside a function on one side and by a typing-only import
    (``if TYPE_CHECKING:``) on the other, is found; the same imports flowing one way are not a circle."""
    lazy_back = {"__init__.py": "", "cache/__init__.py": "",
                 "cache/reader.py": "def predictor():\n    from samcache.cache.predictors import load\n",
                 "cache/predictors.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                        "    from samcache.cache.reader import Split\n"}
    package = _write_package(tmp_path / "circle", lazy_back)
    assert _cycles(_graph(package)) == [
        ["samcache.cache.predictors", "samcache.cache.reader", "samcache.cache.predictors"]]
    assert not _cycles(_graph(package, typing_too=False))  # what the check saw before: runtime imports only
    one_way = {**lazy_back, "cache/reader.py": "def open_cache():\n    pass\n"}
    assert not _cycles(_graph(_write_package(tmp_path / "one_way", one_way)))


def test_the_checker_sees_what_it_should():
    """The graph is not empty by accident: known edges are found."""
    graph = _graph()
    assert "samcache.features.families" in graph["samcache.cache.schema"]
    assert "samcache.evaluation.decoding" in graph["samcache.pipeline.zero_shot"]
