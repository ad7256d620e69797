"""The documents' tables generated from committed result files: each table is one
registered function, and a document holds it between the lines ``<!-- generated: NAME -->``
and ``<!-- end generated -->``. ``write_tables`` rewrites every such block from the files,
and a test fails when a committed document differs from what this module generates, so a
published number is never typed by hand."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from finetune.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ("README.md", "results/README.md", "docs/explain.md")
BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S
)

TABLES: dict[str, Callable[[], str]] = {}


def register_table(name: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
    """Register the function that writes table ``name`` (markdown, from committed files)."""

    def register(function: Callable[[], str]) -> Callable[[], str]:
        TABLES[name] = function
        return function

    return register


def generated(text: str) -> str:
    """``text`` with every generated block written anew."""

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise ConfigError(f"no generated table {name!r}; known: {', '.join(TABLES)}")
        return f"{match[1]}{TABLES[name]().rstrip()}\n{match[4]}"

    return BLOCK.sub(fill, text)


def write_tables(root: Path = ROOT) -> list[Path]:
    """Rewrite the generated blocks of every document; the documents that changed."""
    _load()
    changed = []
    for name in DOCUMENTS:
        path = root / name
        text = path.read_text()
        new = generated(text)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def _load() -> None:
    """Import the modules whose tables register themselves: every study's."""
    from landscape.experiments.studies import studies

    studies()
