"""Imports flow one way: data -> features -> cache -> evaluation -> pipeline (and the CLI), with no circle.

Read from the source with ``ast`` (imports inside functions count too), so a lazy import cannot hide an
upward dependency.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "samcache"
LAYERS = {"data": 1, "features": 2, "cache": 3, "evaluation": 4, "pipeline": 5}
BASE = 0  # samcache/errors.py, messages.py, fileio.py, procs.py: used everywhere, import no layer
STAGES = {"extract", "zero_shot", "clicks", "train_head", "evaluate", "report"}  # (dask_extract is extract's)


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every samcache module ``path`` imports when it runs (``if TYPE_CHECKING:`` blocks are for type checkers)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in found if m.split(".")[0] == "samcache"}


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:
        return BASE
    return LAYERS.get(parts[1], 6 if parts[1] == "__main__" else BASE)


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in _imports(path):
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


def test_no_import_circle():
    graph = _graph()
    graph["samcache"] = set()  # the package's lazy names are strings, not imports
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
    assert not cycles, cycles


def test_the_checker_sees_what_it_should():
    """The graph is not empty by accident: known edges are found."""
    graph = _graph()
    assert "samcache.features.families" in graph["samcache.cache.schema"]
    assert "samcache.evaluation.decoding" in graph["samcache.pipeline.zero_shot"]
