"""Result kinds: the layout of each kind of result file, declared once beside the functions
that write it (a light ``kinds.py`` in the writer's folder, calling ``register_kind``). A
declaration names its writers as dotted paths, so declaring imports none of them; it holds
the prose and tables of the kind's section of results/README.md, which ``readme_section``
renders (``landscape tables`` writes it there); and it checks a file's names against the
layout (``missing``, ``unlisted``)."""

from __future__ import annotations

from dataclasses import dataclass

import h5py

# Root attributes of every kind (finetune.result_files.write_result), not declared per kind.
COMMON_ATTRIBUTES = ("kind", "schema_version", "created", "landscape_version", "command")
# A layout's sections, and how a name of each is spoken of in an error.
SECTIONS = {"attributes": "root attribute", "datasets": "dataset", "summary": "summary attribute"}


@dataclass(frozen=True)
class Attribute:
    """A root or summary attribute: its name and what it holds (markdown). ``optional``:
    only some files hold it (the meaning or the kind's prose says which)."""

    name: str
    meaning: str
    optional: bool = False


@dataclass(frozen=True)
class Dataset:
    """A dataset: its HDF5 path (groups joined by '/'), shape in the kind's symbols, dtype
    and meaning (markdown). ``optional``: only some files hold it."""

    name: str
    shape: str
    dtype: str
    meaning: str
    optional: bool = False


@dataclass(frozen=True)
class ResultKind:
    """One kind of result file: its name (the files' ``kind`` attribute), the functions that
    write it (dotted paths), the prose introducing it in results/README.md (markdown), and
    what its files hold besides the common root attributes: root attributes, datasets and
    attributes of the ``summary`` group. ``summary_note`` qualifies the summary's table
    heading (e.g. when the summary is written)."""

    name: str
    writers: tuple[str, ...]
    intro: str
    attributes: tuple[Attribute, ...]
    datasets: tuple[Dataset, ...] = ()
    summary: tuple[Attribute, ...] = ()
    summary_note: str = ""

    def entries(self) -> dict[str, tuple[Attribute | Dataset, ...]]:
        """The declared entries, by section."""
        return {"attributes": self.attributes, "datasets": self.datasets, "summary": self.summary}

    def required(self) -> dict[str, set[str]]:
        """The names every file of the kind holds, by section."""
        return {
            section: {e.name for e in entries if not e.optional}
            for section, entries in self.entries().items()
        }

    def names(self) -> dict[str, set[str]]:
        """Every name the kind declares, required or optional, by section."""
        return {section: {e.name for e in entries} for section, entries in self.entries().items()}

    def missing(self, f: h5py.File) -> list[str]:
        """The required names ``f`` lacks, e.g. ``["dataset 'alpha'"]``."""
        held = contents(f)
        return [
            f"{SECTIONS[section]} {name!r}"
            for section, names in self.required().items()
            for name in sorted(names - held[section])
        ]

    def unlisted(self, f: h5py.File) -> list[str]:
        """The names ``f`` holds that the kind does not declare."""
        declared = self.names()
        return [
            f"{SECTIONS[section]} {name!r}"
            for section, names in contents(f).items()
            for name in sorted(names - declared[section])
        ]

    def readme_section(self) -> str:
        """The kind's section of results/README.md (markdown): heading, prose, and the
        tables of root attributes, datasets and summary attributes."""
        note = f" ({self.summary_note})" if self.summary_note else ""
        parts = [
            f"## kind `{self.name}`",
            self.intro.strip("\n"),
            f"Root attributes:\n\n{_table(('attribute', 'meaning'), self.attributes)}",
            f"Datasets:\n\n{_table(('dataset', 'shape', 'dtype', 'meaning'), self.datasets)}"
            if self.datasets
            else "Datasets: none.",
            f"Summary attributes{note}:\n\n{_table(('attribute', 'meaning'), self.summary)}",
        ]
        return "\n\n".join(parts) + "\n"


def _table(columns: tuple[str, ...], entries: tuple[Attribute | Dataset, ...]) -> str:
    """A markdown table of ``entries``: the name in backticks, then the other columns."""

    def row(cells: list[str]) -> str:
        return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"

    lines = [row(list(columns)), row(["---"] * len(columns))]
    for e in entries:
        middle = [e.shape, e.dtype] if isinstance(e, Dataset) else []
        lines.append(row([f"`{e.name}`", *middle, e.meaning]))
    return "\n".join(lines)


KINDS: dict[str, ResultKind] = {}


def register_kind(kind: ResultKind) -> ResultKind:
    """Add ``kind`` to ``KINDS``; a name declared twice is an error."""
    if kind.name in KINDS:
        raise ValueError(f"result kind {kind.name!r} is declared twice")
    KINDS[kind.name] = kind
    return kind


def contents(f: h5py.File) -> dict[str, set[str]]:
    """What a result file holds, by section (common root attributes left out)."""
    datasets: set[str] = set()
    f.visititems(lambda name, obj: datasets.add(name) if isinstance(obj, h5py.Dataset) else None)
    return {
        "attributes": set(f.attrs) - set(COMMON_ATTRIBUTES),
        "datasets": datasets,
        "summary": set(f["summary"].attrs) if "summary" in f else set(),
    }
