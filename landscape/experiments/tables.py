"""The documents' generated blocks: tables from committed result files, and the sections of
results/README.md from the declared result kinds (``kind-NAME``, ``finetune.result_kinds``).
Each block is one registered function, and a document holds it between the lines
``<!-- generated: NAME -->`` and ``<!-- end generated -->``. ``write_tables`` rewrites every
such block, and a test fails when a committed document differs from what this module
generates, so neither a published number nor a file layout is typed by hand."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

from finetune.errors import ConfigError, RunDirError

ROOT = Path(__file__).resolve().parents[2]
# The documents that may hold generated tables.
DOCUMENTS = (
    "README.md",
    "results/README.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md")),
)
BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S
)

TABLES: dict[str, Callable[[], str]] = {}


def register_table(name: str) -> Callable[[Callable[[], str]], Callable[[], str]]:
    """Register the function that writes block ``name`` (markdown)."""

    def register(function: Callable[[], str]) -> Callable[[], str]:
        TABLES[name] = function
        return function

    return register


def generated(text: str, names: Sequence[str] | None = None) -> str:
    """``text`` with every generated block (or those of the tables ``names``) written
    anew. A table whose committed file is missing is one line naming the file."""

    def fill(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise ConfigError(f"no generated table {name!r}; known: {', '.join(TABLES)}")
        if names is not None and name not in names:
            return match[0]
        try:
            table = TABLES[name]()
        except FileNotFoundError as err:
            where = err.filename or str(err).partition("name = ")[2].split(",")[0]
            raise RunDirError(f"table {name}: no committed file {where}") from None
        return f"{match[1]}{table.rstrip()}\n{match[4]}"

    return BLOCK.sub(fill, text)


def write_tables(root: Path = ROOT, names: Sequence[str] | None = None) -> list[Path]:
    """Rewrite the generated blocks (all, or the tables ``names``) of every document; the
    documents that changed."""
    _load()
    unknown = sorted(set(names or ()) - set(TABLES))
    if unknown:
        raise ConfigError(f"no generated table {unknown[0]!r}; known: {', '.join(TABLES)}")
    changed = []
    for name in DOCUMENTS:
        path = root / name
        text = path.read_text()
        new = generated(text, names)
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed


def _load() -> None:
    """Register every block: import the modules whose tables register themselves (every
    study's, every claim's and the claims' summary), and one section per declared result
    kind."""
    from finetune.result_kinds import KINDS
    from landscape.experiments.repro import claims, summary  # noqa: F401
    from landscape.experiments.studies import studies
    from landscape.plots import kinds  # noqa: F401  (it loads every kind's declaration)

    claims()
    studies()
    for kind in KINDS.values():
        register_table(f"kind-{kind.name}")(kind.readme_section)


# The CPU training benchmark with and without torch.compile, from one run of
# `landscape bench --only train --device cpu --compile-modes off,on --out-dir COMPILED_CPU`.
COMPILED_CPU = Path("results/bench/cpu-compile")


@register_table("cpu-compiled")
def cpu_compiled_table() -> str:
    """Engine and plain loop, eager and compiled, images/s and their ratio."""
    import h5py

    lines = ["| mode | engine | plain loop | ratio |", "| --- | --- | --- | --- |"]
    for mode, name in (("eager", "train_cpu.h5"), ("compiled", "train_compiled_cpu.h5")):
        with h5py.File(ROOT / COMPILED_CPU / name) as f:
            s = f["summary"].attrs
            engine, plain = s["engine_images_per_s"], s["plain_images_per_s"]
            lines.append(f"| {mode} | {engine:,.0f} images/s | {plain:,.0f} images/s | "
                         f"{s['ratio']:.3f} |")  # fmt: skip
    return "\n".join(lines)
