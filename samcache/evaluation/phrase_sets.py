"""Prompt sets as data: a phrases YAML maps each class to one or more noun phrases (``configs/phrases/``).

A set is named (a file ``configs/phrases/<name>.yaml`` of this repository) or given as a path. Classes the
run does not evaluate are skipped when they are Cityscapes class names (one set serves seed5 and
cityscapes19); classes it evaluates and the set omits are prompted by their name. ``--phrase`` adds to it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from samcache.data.labels import get_class_set
from samcache.errors import SamcacheError

PHRASE_SETS = Path(__file__).resolve().parents[2] / "configs" / "phrases"  # the shipped sets
DEFAULT_SET = "class_names"


def shipped_sets() -> list[str]:
    return sorted(p.stem for p in PHRASE_SETS.glob("*.yaml"))


def phrase_set_path(name: str) -> Path:
    """A set's name (shipped) or path -> its file; one line when it is neither."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        path = Path(name)
    else:
        path = PHRASE_SETS / f"{name}.yaml"
    if not path.is_file():
        raise SamcacheError(f"phrase set {name!r} not found: give a phrases YAML file or one of "
                            f"{', '.join(shipped_sets()) or '(none shipped)'}")
    return path


def load_phrase_set(name: str, class_set: str) -> dict[str, list[str]]:
    """The set's {class: [phrases]} for the classes ``class_set`` evaluates; one line for a malformed file."""
    path = phrase_set_path(name)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SamcacheError(f"phrase set {path}: not readable YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not data:
        raise SamcacheError(f"phrase set {path}: expected a mapping of class name -> list of phrases")
    known = set(get_class_set("cityscapes19").class_names) | set(get_class_set(class_set).class_names)
    evaluated = {get_class_set(class_set).class_names[c] for c in get_class_set(class_set).eval_indices}
    out = {}
    for cls, phrases in data.items():
        if cls not in known:
            raise SamcacheError(f"phrase set {path}: unknown class {cls!r}")
        if isinstance(phrases, str):
            phrases = [phrases]
        if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) and p.strip() for p in phrases):
            raise SamcacheError(f"phrase set {path}: phrases for {cls!r} must be a non-empty list of non-empty "
                                f"strings, got {phrases!r}")
        if cls in evaluated:
            out[cls] = [p.strip() for p in phrases]
    return out
