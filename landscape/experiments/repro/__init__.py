"""Reproducibility experiments: each published claim (results/README.md) is one registered
function that runs its experiment on tiny models and one pair of source and targets
(``landscape.experiments.recipes.PAIRS``: synthetic images, or real ones) and returns
a ``ClaimResult``: a table of per-seed numbers, the series to plot, the statistic the claim
is judged on and whether it held. ``run_claim`` writes ``NAME.h5`` (kind ``repro``) and
``NAME.png``. ``quick`` is the CI-sized version; without it more seeds and more data."""

from __future__ import annotations

import importlib
import json
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from finetune.errors import ConfigError
from finetune.result_files import write_result
from landscape.experiments.options import ReproOptions
from landscape.experiments.used_runs import recording, run_datasets
from probes.statistics import mean_and_spread


@dataclass
class ClaimResult:
    """What a claim's experiment measured. ``values`` is (rows, columns, seeds), NaN where
    a cell has fewer seeds; ``series`` maps a line label to its (mean, spread) over
    ``x`` for the plot; ``statistic`` is the number the claim is judged on."""

    rows: list[str]
    columns: list[str]
    values: np.ndarray
    x: np.ndarray
    xlabel: str
    ylabel: str
    series: dict[str, tuple[np.ndarray, np.ndarray]]
    statistic: float
    threshold: float
    held: bool
    verdict: str
    xlog: bool = False
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        mean, spread = mean_and_spread(self.values)
        width = max(len(r) for r in self.rows + ["row"]) + 2
        lines = ["".ljust(width) + "".join(f"{c:>18s}" for c in self.columns)]
        for i, row in enumerate(self.rows):
            cells = "".join(
                f"{_cell(mean[i, j], spread[i, j]):>18s}" for j in range(len(self.columns))
            )
            lines.append(row.ljust(width) + cells)
        return "\n".join(lines)


Judge = Callable[[ClaimResult], ClaimResult]


@dataclass(frozen=True)
class Claim:
    """A claim's experiment and, for claims whose verdict reads only the table of values
    (and ``x``), its ``judge``: the verdict from those numbers alone, so that it can be
    recomputed from a committed file (``rejudge``) without training anything."""

    name: str
    title: str
    paper: str
    run: Callable[[ReproOptions], ClaimResult]
    judge: Judge | None = None


CLAIMS: dict[str, Claim] = {}


def register_claim(
    name: str, title: str, paper: str, judge: Judge | None = None
) -> Callable[[Callable[[ReproOptions], ClaimResult]], Callable[[ReproOptions], ClaimResult]]:
    """Register the experiment of one claim under ``name`` (with its ``judge``, when its
    verdict reads only its table; the experiment then returns ``judge`` of its result)."""

    def register(function: Callable[[ReproOptions], ClaimResult]):
        CLAIMS[name] = Claim(name, title, paper, function, judge)
        return function

    return register


def claims() -> dict[str, Claim]:
    """Every claim, by name: each module of this package registers its own."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(CLAIMS.items()))


def find_claim(name: str) -> Claim:
    """The claim ``name``, or an error listing the known ones."""
    known = claims()
    if name not in known:
        raise ConfigError(f"unknown claim {name!r}; known: {', '.join(known)}")
    return known[name]


def run_claim(
    name: str, options: ReproOptions, out: str | Path, command: str | None = None
) -> ClaimResult:
    """Run claim ``name`` and write ``out/NAME.h5`` (kind ``repro``), with the record of
    every run it completed (``used_runs``)."""
    claim = find_claim(name)
    start = time.perf_counter()
    with recording() as runs:
        result = claim.run(options)
    seconds = time.perf_counter() - start
    described = {"quick": options.quick, "model": options.model, "pair": options.pair}
    path = Path(out) / f"{name}.h5"
    _write(path, claim, result, described, seconds, command, run_datasets(runs))
    return result


def read_claim(path: str | Path) -> tuple[ClaimResult, dict[str, Any], float]:
    """A committed claim file as its result, the run's description (quick, model, pair)
    and the seconds it took."""
    with h5py.File(path) as f:
        a, summary = f.attrs, f["summary"].attrs
        labels = list(f["plot/labels"].asstr()[()])
        result = ClaimResult(
            rows=list(f["table/rows"].asstr()[()]),
            columns=list(f["table/columns"].asstr()[()]),
            values=f["table/values"][()],
            x=f["plot/x"][()],
            xlabel=str(a["xlabel"]),
            ylabel=str(a["ylabel"]),
            series={k: (f["plot/mean"][i], f["plot/spread"][i]) for i, k in enumerate(labels)},
            statistic=float(summary["statistic"]),
            threshold=float(summary["threshold"]),
            held=bool(summary["held"]),
            verdict=str(a["verdict"]),
            xlog=bool(a["xlog"]),
            notes=list(json.loads(a["notes"])) if isinstance(a["notes"], str) else [],
        )
        described = {"quick": bool(a["quick"]), "model": str(a["model"]),
                     "pair": str(a["pair"])}  # fmt: skip
        return result, described, float(summary["seconds"])


def rejudge(name: str, path: str | Path, command: str | None = None) -> ClaimResult:
    """The verdict of claim ``name`` recomputed from its file at ``path`` by its judge, the
    file rewritten with it (its numbers and its runs' records unchanged): no run is
    trained."""
    claim = find_claim(name)
    if claim.judge is None:
        raise ConfigError(f"{name}'s verdict reads its runs, not only its table: run the claim")
    if not Path(path).exists():
        raise ConfigError(f"no {path} to rejudge: run the claim first")
    result, described, seconds = read_claim(path)
    with h5py.File(path) as f:
        runs = {f"runs/{key}": _values(data) for key, data in f.get("runs", {}).items()}
    judged = claim.judge(result)
    _write(Path(path), claim, judged, described, seconds, command, runs)
    return judged


def _write(
    path: Path,
    claim: Claim,
    result: ClaimResult,
    described: dict[str, Any],
    seconds: float,
    command: str | None,
    runs: dict[str, Any],
) -> None:
    """Write a claim's result (kind ``repro``) with its ``runs/`` datasets."""
    mean, spread = mean_and_spread(result.values)
    labels = list(result.series)
    write_result(
        path,
        "repro",
        {
            "table/rows": result.rows,
            "table/columns": result.columns,
            "table/values": result.values,
            "table/mean": mean,
            "table/spread": spread,
            "plot/x": result.x,
            "plot/labels": labels,
            "plot/mean": np.stack([result.series[k][0] for k in labels]),
            "plot/spread": np.stack([result.series[k][1] for k in labels]),
            **runs,
        },
        attrs={
            "claim": claim.name,
            "title": claim.title,
            "paper": claim.paper,
            "verdict": result.verdict,
            "notes": result.notes,
            **described,
            "xlabel": result.xlabel,
            "ylabel": result.ylabel,
            "xlog": result.xlog,
        },
        summary={
            "held": result.held,
            "statistic": result.statistic,
            "threshold": result.threshold,
            "seconds": seconds,
        },
        command=command,
    )


# The outcome of an effect with the paper's sign that does not clear its noise bar.
NOT_DISTINGUISHABLE = "not distinguishable from no effect"


def judged_outcome(held: bool, positive: bool) -> str:
    """The outcome of a claim judged by a statistic beyond its noise (a permutation p, a
    paired t): held, or, when only the effect's sign agrees, not distinguishable from no
    effect, or not held."""
    if held:
        return "held"
    return NOT_DISTINGUISHABLE if positive else "not held"


def _values(data: h5py.Dataset) -> Any:
    """A dataset's values as they were written: strings as a list of ``str``."""
    return list(data.asstr()[()]) if h5py.check_string_dtype(data.dtype) else data[()]


def _cell(mean: float, spread: float) -> str:
    if np.isnan(mean):
        return "-"
    return f"{mean:.3f}" if np.isnan(spread) else f"{mean:.3f} ± {spread:.3f}"
