"""The run directories a claim brings to completion (trained, resumed or reused), recorded
as it goes: in this process, and in the independent chains it hands to an executor, which
send theirs back with their results. A claim file keeps each one's record
(``finetune.runs.run_record``) in its ``runs/`` datasets, so that two files whose numbers
differ can be traced to the runs that differ."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_RECORDERS: list[list[Path]] = []  # the open ``recording`` blocks of this process


@contextlib.contextmanager
def recording() -> Iterator[list[Path]]:
    """Within the block, the runs completed in this process (``record``, as each step that
    asked for them ends) and sent back by the chains of ``Recorded`` (as each returns); a
    run two steps asked for appears more than once. A block nested inside it keeps its
    runs: they reach this one when its owner passes them on (``Recorded``'s result)."""
    runs: list[Path] = []
    _RECORDERS.append(runs)
    try:
        yield runs
    finally:
        _RECORDERS.pop()


def record(runs: Iterable[Path]) -> None:
    """``runs`` were brought to completion: the innermost open ``recording`` block, if
    any, hears of them."""
    if _RECORDERS:
        _RECORDERS[-1].extend(runs)


@dataclass(frozen=True)
class Recorded(Generic[T, R]):
    """``function`` as a call an executor runs anywhere: its result, and the runs it
    completed where it ran."""

    function: Callable[[T], R]

    def __call__(self, item: T) -> tuple[R, list[Path]]:
        with recording() as runs:
            result = self.function(item)
        return result, runs


def run_datasets(runs: Sequence[Path]) -> dict[str, list]:
    """The ``runs/`` datasets of a claim file (kind ``repro``): one record per run, each
    run once, in the order first recorded; none without runs."""
    from finetune.runs import run_record

    records = [run_record(run) for run in dict.fromkeys(Path(run) for run in runs)]
    if not records:
        return {}
    return {f"runs/{key}": [r[key] for r in records] for key in records[0]}
