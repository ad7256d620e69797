"""How long every claim (the reference results, ``landscape repro all``) takes from scratch
on each way of running them on this machine, back to back, each into an empty folder of its
own (dropped after): one claim after the other serially (the process's threads), serially
with one thread, one after the other with each claim's grids on ``--workers N``, and side by
side (``landscape repro all``) on ``--workers N`` and on a local Ray cluster of N CPUs (N =
the cores, one thread per run). Also whether each way's claim tables are the ones serial
with one thread gives, as one thread per run makes them on the CPU.

At full size the serial ways take hours: the committed claim files are that measurement
(serial, one thread per run), so the study times only the fastest way at CI size (side by
side on ``--workers N``) and checks its tables against those files, keeping the claim files
it wrote beside its own (``from_scratch/NAME.h5``) for the claims' verdicts to be compared."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from finetune import rundir
from finetune.executors import cores, thread_count
from finetune.result_files import write_result
from landscape.experiments.options import ReproOptions
from landscape.experiments.recipes import PAIRS, results_folder
from landscape.experiments.repro import ClaimResult, claims, read_claim, run_claim
from landscape.experiments.repro.all_claims import run_claims
from landscape.experiments.studies import register_study
from landscape.experiments.studies.executor_speed import ONE_THREAD, executors
from landscape.experiments.tables import ROOT, register_table

NAME = "all_claims_speed"
FILE = f"{NAME}.h5"  # the CI size, every way
FULL_FILE = f"{NAME}_full.h5"  # the full size, the fastest way
FROM_SCRATCH = "from_scratch"  # beside FULL_FILE: the claim files the full size wrote


def ways(options: ReproOptions) -> dict[str, tuple[ReproOptions, int | None, bool]]:
    """Each way measured, by label, in the order they run: its options, its threads (None:
    the process's) and whether the claims run side by side (else one after the other), from
    the executors ``executor_speed`` measures (serial, one thread, workers, Ray)."""
    serial, one_thread, workers, ray = executors(options).items()
    side_by_side = f"claims side by side, {workers[0]}"
    every = {
        serial[0]: (*serial[1], False),
        one_thread[0]: (*one_thread[1], False),
        f"claims in turn, {workers[0]}": (*workers[1], False),
        side_by_side: (*workers[1], True),
        f"claims side by side, {ray[0]}": (*ray[1], True),
    }
    return every if options.quick else {side_by_side: every[side_by_side]}


def run_way(
    names: list[str], options: ReproOptions, folder: Path, side_by_side: bool
) -> dict[str, ClaimResult]:
    """The claims ``names`` into ``folder`` (their runs in ``folder/runs``), side by side
    or in turn."""
    here = replace(options, runs=folder / "runs")
    if side_by_side:
        return run_claims(names, here, folder)
    return {name: run_claim(name, here, folder) for name in names}


@register_study(NAME, "how long every claim takes from scratch on each executor")
def all_claims_speed(options: ReproOptions, out: Path) -> list[Path]:
    return [measure_ways(list(claims()), options, out / (FILE if options.quick else FULL_FILE))]


def committed_claim(pair: str, name: str) -> Path:
    """The committed file of claim ``name`` on ``pair`` (full size, serial with one thread
    per run): the reference of the full-size measurement."""
    return ROOT / results_folder(pair) / f"{name}.h5"


def committed_tables(names: list[str], pair: str) -> list[np.ndarray]:
    """The tables of the committed claim files of ``pair``."""
    return [read_claim(committed_claim(pair, name))[0].values for name in names]


def measure_ways(names: list[str], options: ReproOptions, path: Path) -> Path:
    """Time the claims ``names`` each way and write the file ``path``: at CI size every way,
    tables compared with serial with one thread's; at full size the fastest way, tables
    compared with the committed claim files."""
    reference = None if options.quick else committed_tables(names, options.pair)
    seconds, claim_seconds, tables = {}, {}, {}
    for index, (label, (chosen, threads, side_by_side)) in enumerate(ways(options).items()):
        folder = options.runs / NAME / str(index)
        shutil.rmtree(folder, ignore_errors=True)
        options.log(f"every claim from scratch, {label} -> {folder}")
        with thread_count(threads):
            started = time.perf_counter()
            results = run_way(names, chosen, folder, side_by_side)
            seconds[label] = time.perf_counter() - started
        if chosen.ray is not None:
            chosen.executor.close()
        claim_seconds[label] = [read_claim(folder / f"{name}.h5")[2] for name in names]
        tables[label] = [results[name].values for name in names]
        runs = sum(1 for _ in (folder / "runs").glob(f"*/{rundir.CONFIG}"))
        if not options.quick:
            kept = path.parent / FROM_SCRATCH
            kept.mkdir(exist_ok=True)
            for name in names:
                shutil.copy(folder / f"{name}.h5", kept)
        shutil.rmtree(folder, ignore_errors=True)
    labels = list(seconds)
    total = np.array([seconds[label] for label in labels])
    reference = tables[ONE_THREAD] if reference is None else reference
    speedups = {
        "speedup": total[0] / total,
        "speedup_one_thread": total[labels.index(ONE_THREAD)] / total,
    } if options.quick else {}  # fmt: skip
    write_result(
        path,
        "all_claims_speed",
        {
            "ways": labels,
            "claims": names,
            "seconds": total,
            "claim_seconds": np.array([claim_seconds[label] for label in labels]),
            **speedups,
            "same_tables": np.array([
                all(np.array_equal(a, b, equal_nan=True)
                    for a, b in zip(tables[label], reference))
                for label in labels
            ]),
        },  # fmt: skip
        attrs={"pair": options.pair, "model": options.model, "quick": options.quick,
               "cores": cores()},  # fmt: skip
        summary={"runs": runs},
    )
    return path


@register_table("all-claims-speed")
def all_claims_speed_table() -> str:
    """The committed measurement: each way's wall time for every claim, and its speed-ups."""
    with h5py.File(ROOT / results_folder("synthetic") / FILE) as f:
        a, summary = f.attrs, f["summary"].attrs
        rows = zip(f["ways"].asstr()[()], f["seconds"][()], f["speedup"][()],
                   f["speedup_one_thread"][()], f["same_tables"][()])  # fmt: skip
        size = "quick" if a["quick"] else "full"
        lines = [
            f"Every claim ({size}, {a['pair']} pair, {a['model']}) from scratch, "
            f"{summary['runs']} runs, on {a['cores']} cores:",
            "",
            "| way | wall time | speed-up over serial | over serial, 1 thread | "
            "tables as serial, 1 thread |",
            "| --- | --- | --- | --- | --- |",
            *(f"| {label} | {s / 60:.1f} min | {x:.2f}x | {x1:.2f}x | "
              f"{'identical' if same else 'differ'} |"
              for label, s, x, x1, same in rows),  # fmt: skip
        ]
    return "\n".join(lines)


@register_table("all-claims-wall-time")
def all_claims_wall_time() -> str:
    """The README's line: every claim's wall time at its CI size, serially and the fastest
    way, from the committed measurement; at full size, for each pair, as the claims' files
    record it (one after the other, one thread per run) and, once measured, the fastest
    way's."""
    with h5py.File(ROOT / results_folder("synthetic") / FILE) as f:
        a, runs = dict(f.attrs), int(f["summary"].attrs["runs"])
        ways, seconds = list(f["ways"].asstr()[()]), f["seconds"][()]
        same = f["same_tables"][()]
    fastest = int(np.argmin(seconds))
    one = ways.index(ONE_THREAD)
    return " ".join([
        f"Every claim at its CI size ({a['pair']} pair, {runs} runs from scratch, "
        f"{a['cores']} cores): {seconds[0] / 60:.1f} min serially, {seconds[one] / 60:.1f} min "
        f"serially with one thread per run, {seconds[fastest] / 60:.1f} min {ways[fastest]} "
        f"({seconds[0] / seconds[fastest]:.2f}x and {seconds[one] / seconds[fastest]:.2f}x "
        f"faster), with {'the same' if same[fastest] else 'other'} tables as serial with one "
        "thread.",
        *(f"At full size the {pair} pair's committed claim files record "
          f"{sum(read_claim(committed_claim(pair, name))[2] for name in claims()) / 3600:.1f} "
          "hours, one claim after the other with one thread per run and the runs claims share "
          f"trained once; {full_size_measured(ROOT / results_folder(pair) / FULL_FILE)}."
          for pair in PAIRS),
    ])  # fmt: skip


def full_size_measured(path: Path) -> str:
    """The full-size measurement at ``path`` in words (and, where its tables differ from the
    committed claim files of its pair, whose verdicts differ), or that it is not yet made."""
    if not path.exists():
        return "the full size side by side is not yet timed"
    with h5py.File(path) as f:
        a, runs = dict(f.attrs), int(f["summary"].attrs["runs"])
        way, seconds = f["ways"].asstr()[0], float(f["seconds"][0])
        same = bool(f["same_tables"][0])
        names = list(f["claims"].asstr()[()])
    timed = (f"from scratch ({runs} runs, {a['cores']} cores) they take "
             f"{seconds / 3600:.1f} hours {way}")  # fmt: skip
    if same:
        return f"{timed}, with the same tables as those files"
    kept = path.parent / FROM_SCRATCH
    flipped = [
        f"{name}'s ({'held' if new else 'did not hold'} from scratch)"
        for name in names
        if (new := read_claim(kept / f"{name}.h5")[0].held)
        != read_claim(committed_claim(a["pair"], name))[0].held
    ]
    shown = kept.relative_to(ROOT) if kept.is_relative_to(ROOT) else kept
    return (
        f"{timed}, with tables other than those files (the runs from scratch differ from "
        f"those the files were made from; the claim files it wrote are in `{shown}`): each "
        "claim's verdict is the same" + (f" but {', '.join(flipped)}" if flipped else "")
    )
