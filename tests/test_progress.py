"""Progress a person can follow: a grid of runs is one bar on a terminal and one line per
finished run in a log, with no redrawn bars; the grid helper reports each distinct run
once, says which were reused, and estimates the time left from the runs it trained."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest

import finetune.runs
from cli.progress import ProgressBar
from finetune import rundir
from finetune.config import build_config
from finetune.executors import Finished, PlannedRun
from landscape.experiments.options import GridProgress, ReproOptions


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def step(n: int, steps: int = 10) -> dict:
    return dict(event="step", epoch=1, epochs=2, step=n, steps=steps, loss=1.0, acc=0.5,
                lr=0.1, images_per_s=10.0)  # fmt: skip


EPOCH = dict(event="epoch", epoch=1, epochs=2, train_loss=1.0, train_acc=0.5, eval_loss=1.0,
             eval_acc=0.5, images_per_s=10.0)  # fmt: skip


def grid(done: int, total: int = 2, reused: int = 0, was_reused: bool = False) -> dict:
    return dict(event="grid", done=done, total=total, reused=reused, seconds_left=30.0,
                name=f"run-{done}", was_reused=was_reused, seconds=12.0)  # fmt: skip


def test_a_log_gets_one_line_per_finished_run_and_nothing_redrawn():
    log = io.StringIO()
    bar = ProgressBar(stream=log)
    bar(grid(0))
    for done in (1, 2):
        bar(step(3)), bar(EPOCH), bar(step(10)), bar({"event": "done"})
        bar(grid(done, reused=done - 1, was_reused=done == 2))
    lines = log.getvalue().splitlines()
    assert lines == [
        "run 1/2 trained in 12 s: run-1; about 30 s left",
        "run 2/2 reused: run-2; about 30 s left",
    ]
    assert "\r" not in log.getvalue()
    # Outside a grid a single run's log has its epoch lines and no bar.
    bar(step(3)), bar(EPOCH), bar({"event": "done"})
    assert log.getvalue().splitlines()[-1].startswith("epoch 1/2  train loss 1.0000")
    assert "\r" not in log.getvalue()


def test_a_terminal_shows_one_bar_of_runs_not_one_per_run():
    screen = Terminal()
    bar = ProgressBar(stream=screen)
    bar(grid(0))
    bar(step(3))
    assert bar.bar is None and bar.grid is not None and bar.grid.total == 2
    bar(grid(1))
    assert bar.grid.n == 1 and "about 30 s left" in screen.getvalue()
    bar(grid(2))
    assert bar.grid is None and bar.grid_total == 0
    bar(step(3))  # a run after the grid: its own bar of steps
    assert bar.bar is not None and bar.bar.total == 10
    bar.close()


def test_grid_progress_counts_and_estimates_from_the_trained_runs():
    events: list[dict] = []
    progress = GridProgress(events.append, total=5)
    config = build_config("finetune", {})
    progress.finished(PlannedRun(config, Path("a")), Finished(reused=True, seconds=0.1))
    assert math.isnan(events[-1]["seconds_left"])  # nothing trained yet: no estimate
    progress.finished(PlannedRun(config, Path("b")), Finished(reused=False, seconds=10.0))
    progress.finished(PlannedRun(config, Path("c")), Finished(reused=False, seconds=30.0))
    assert [e["done"] for e in events] == [0, 1, 2, 3]
    assert events[-1]["reused"] == 1
    assert events[-1]["seconds_left"] == pytest.approx(2 * 20.0)  # two left at the mean 20 s


def test_the_grid_helper_reports_each_distinct_run_once_and_its_reuse(tmp_path, monkeypatch):
    def ensure_run(config, path: Path, progress=None) -> Path:  # a run trained at once
        path.mkdir(parents=True)
        rundir.write_json(path / rundir.CONFIG, {"config_hash": config.hash()})
        rundir.write_status(path, "completed")
        return path

    monkeypatch.setattr(finetune.runs, "ensure_run", ensure_run)
    events: list[dict] = []
    options = ReproOptions(runs=tmp_path, progress=events.append)
    shared = ("base", {"seed": 0})  # as yosinski's baseB heads every row
    cells = {(0, 0): shared, (1, 0): shared, (0, 1): ("a", {}), (1, 1): ("b", {})}
    values, runs = options.measure(cells, (2, 2), read=lambda run: float(len(run.name)))
    assert values.tolist() == [[4.0, 1.0], [4.0, 1.0]] and runs[0, 0] == runs[1, 0]
    assert [(e["done"], e["total"], e["reused"]) for e in events] == [
        (0, 3, 0),
        (1, 3, 0),
        (2, 3, 0),
        (3, 3, 0),
    ]
    events.clear()
    options.measure(cells, (2, 2), read=lambda run: 0.0)
    assert events[-1]["reused"] == 3 and all(e["was_reused"] for e in events[1:])
