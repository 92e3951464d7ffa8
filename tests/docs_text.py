"""The README and docs/ as the tests read them, so a documented block cannot rot wherever it lives."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def docs_text() -> str:
    """README.md and every docs/*.md, one after another."""
    return "\n".join(path.read_text() for path in DOCS)


def marked(name: str) -> str:
    """The text between ``<!-- name:start -->`` and ``<!-- name:end -->``: exactly one such block in the docs."""
    found = re.findall(rf"<!-- {re.escape(name)}:start -->(.*?)<!-- {re.escape(name)}:end -->", docs_text(), re.S)
    assert len(found) == 1, f"{len(found)} blocks marked {name!r} in README.md and docs/"
    return found[0]


def code(name: str, language: str = "python") -> str:
    """The one ```language block inside the block marked ``name``."""
    return marked(name).split(f"```{language}\n")[1].split("```")[0]
