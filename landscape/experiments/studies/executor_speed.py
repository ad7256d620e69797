"""How fast one claim's runs train on each executor of this machine, from scratch: serial
(one run after the other with this process's threads, the default), serial with one
thread, ``--workers N`` (N = the cores, one thread each) and a local Ray cluster of N CPUs
(one each), back to back, each into an empty runs folder of its own (dropped after): the
source first (one run, which no executor can spread), then the claim's grid. Also
whether the one-thread runs (serial, workers, Ray) are bit-identical, as one thread per run
makes them on the CPU. The claim is ``depth``: a source, then a grid of fine-tunings."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from finetune import rundir
from finetune.executors import cores, thread_count
from finetune.executors.ray_cluster import LOCAL
from finetune.result_files import write_result
from landscape.experiments.options import ReproOptions
from landscape.experiments.recipes import results_folder
from landscape.experiments.repro import find_claim
from landscape.experiments.studies import register_study
from landscape.experiments.tables import ROOT, register_table

NAME = "executor_speed"
FILE = "executor_speed.h5"
CLAIM = "depth"
ONE_THREAD = "serial, 1 thread"  # the executor the one-thread runs are compared with


def executors(options: ReproOptions) -> dict[str, tuple[ReproOptions, int | None]]:
    """The options of each executor measured and the threads it runs with (None: the
    process's), by label, in the order they run."""
    n = cores()
    return {
        "serial": (replace(options, workers=1, ray=None), None),
        ONE_THREAD: (replace(options, workers=1, ray=None), 1),
        f"--workers {n}": (replace(options, workers=n, ray=None), None),
        f"--ray {LOCAL} ({n} CPUs)": (replace(options, workers=1, ray=LOCAL), None),
    }


@register_study(NAME, "how fast a claim's runs train serially, on worker processes and on Ray")
def executor_speed(options: ReproOptions, out: Path) -> list[Path]:
    claim = find_claim(CLAIM)
    folders, seconds = {}, {}
    for index, (label, (chosen, threads)) in enumerate(executors(options).items()):
        folders[label] = options.runs / NAME / str(index)
        shutil.rmtree(folders[label], ignore_errors=True)
        options.log(f"{CLAIM} from scratch, {label} -> {folders[label]}")
        here = replace(chosen, runs=folders[label])
        with thread_count(threads):
            started = time.perf_counter()
            here.source_run()
            source = time.perf_counter()
            claim.run(here)
            seconds[label] = (source - started, time.perf_counter() - source)
        if chosen.ray is not None:
            chosen.executor.close()
    labels = list(seconds)
    source_seconds, grid_seconds = (np.array(column) for column in zip(*seconds.values()))
    one_thread = [folders[label] for label in labels[1:]]  # one thread per run, each
    runs = sorted(p.name for p in one_thread[0].iterdir() if (p / rundir.CONFIG).exists())
    identical = all(_same_weights(one_thread[0] / run, folder / run)
                    for run in runs for folder in one_thread[1:])  # fmt: skip
    path = out / FILE
    write_result(
        path,
        "executor_speed",
        {
            "executors": labels,
            "source_seconds": source_seconds,
            "grid_seconds": grid_seconds,
            "speedup": (source_seconds + grid_seconds)[0] / (source_seconds + grid_seconds),
            "grid_speedup": grid_seconds[0] / grid_seconds,
        },
        attrs={
            "claim": CLAIM,
            "pair": options.pair,
            "model": options.model,
            "quick": options.quick,
            "cores": cores(),
        },  # fmt: skip
        summary={"runs": len(runs), "one_thread_identical": identical},
    )
    for folder in folders.values():
        shutil.rmtree(folder, ignore_errors=True)
    return [path]


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = rundir.load_weights(a / rundir.FINAL), rundir.load_weights(b / rundir.FINAL)
    return wa.keys() == wb.keys() and all(wa[k].equal(wb[k]) for k in wa)


@register_table("executor-speed")
def executor_speed_table() -> str:
    """The committed measurement: each executor's wall time and speed-up over serial."""
    with h5py.File(ROOT / results_folder("synthetic") / FILE) as f:
        a, summary = f.attrs, f["summary"].attrs
        labels, grid = list(f["executors"].asstr()[()]), f["grid_seconds"][()]
        rows = zip(labels, f["source_seconds"][()], grid, f["speedup"][()],
                   f["grid_speedup"][()])  # fmt: skip
        size = "quick" if a["quick"] else "full"
        lines = [
            f"`landscape repro {a['claim']}` ({size}, {a['pair']} pair, {a['model']}) from "
            f"scratch, {summary['runs']} runs (the source, then its grid), on {a['cores']} "
            "cores; speed-ups over serial:",
            "",
            "| executor | source | grid | whole claim | speed-up, grid | speed-up, whole |",
            "| --- | --- | --- | --- | --- | --- |",
            *(f"| {label} | {s:.0f} s | {g:.0f} s | {s + g:.0f} s | {x_g:.2f}x | {x:.2f}x |"
              for label, s, g, x, x_g in rows),  # fmt: skip
            "",
            f"Against serial with one thread per run, the grid is {grid[1] / grid[2]:.2f}x "
            f"faster with {labels[2]} and {grid[1] / grid[3]:.2f}x on Ray. The run directories "
            "of one thread per run (serial, workers, Ray) are "
            + ("bit-identical." if summary["one_thread_identical"] else "NOT bit-identical."),
        ]
    return "\n".join(lines)
