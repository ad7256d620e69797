"""The sweep: every trial is a complete run directory whose configuration is the trial's
point; a killed sweep resumes without repeating finished trials; two workers share one
SQLite study; pruning stops a run after the epoch the pruner rejects; a bad space file
stops with one line before any trial runs."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import fast_config
from test_cli import run_cli

from finetune import engine, rundir
from finetune.config import build_config
from finetune.errors import ConfigError
from finetune.runs import run_summary
from landscape.tune.space import check_space, read_space
from landscape.tune.sweep import best_config, default_storage, run_sweep, run_trial, sweep_report

ROOT = Path(__file__).resolve().parents[1]
BASE = """
[base]
model = "test_resnet"
init = "{source}"
data = "synthetic:near"
image-size = 16
train-per-class = {per_class}
epochs = {epochs}
batch-size = 8
eval-batch-size = 64
"""
SPACE = """
[space]
transfer-groups = { choices = [4, 6] }
lr = { low = 1e-3, high = 0.1, log = true }
l2sp = { low = 1e-3, high = 1.0, log = true, zero = true, per-group = true }
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny test_resnet 'pre-trained' on synthetic:source (one epoch)."""
    run = tmp_path_factory.mktemp("source") / "run"
    config = fast_config("pretrain", data="synthetic:source", epochs=1, train_per_class=2)
    engine.train(config, run, command="test")
    return run


def write_space(
    folder: Path, source: Path, space: str = SPACE, *, per_class: int = 2, epochs: int = 2
) -> Path:
    path = folder / "space.toml"
    path.write_text(BASE.format(source=source, per_class=per_class, epochs=epochs) + space)
    return path


def load(out: Path, name: str = "space") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=default_storage(out))


def test_every_trial_is_a_complete_run_of_its_point(tmp_path, source, monkeypatch, capsys):
    space = write_space(tmp_path, source)
    out = tmp_path / "sweep"
    report = run_sweep(space, trials=3, out=out, heartbeat=1)

    assert [t.state for t in report.trials] == ["COMPLETE"] * 3
    assert len({t.run for t in report.trials}) == 3
    for trial in report.trials:
        run = Path(trial.run)
        assert rundir.read_status(run)[0] == "completed"
        config = rundir.read_config(run)["config"]
        p = trial.params
        assert config["policy"]["transfer_groups"] == p["transfer-groups"]
        assert config["optim"]["lr"] == p["lr"]
        assert config["reg"]["l2sp"] == [
            0.0 if p[f"l2sp.{g}:off"] else p[f"l2sp.{g}"] for g in range(6)
        ]
        summary = run_summary(run)
        assert trial.value == summary["final_eval_acc"]
        assert trial.test_acc == summary["test_acc"]

    best = max(report.trials, key=lambda t: (t.value, -t.number))
    assert report.best == best
    values = best_config(out=out, study="space")
    assert (
        build_config("finetune", values).hash() == rundir.read_config(Path(best.run))["config_hash"]
    )

    # Run again: the study already holds 3 finished trials, so nothing is trained.
    stamps = {t.run: (Path(t.run) / rundir.FINAL).stat().st_mtime_ns for t in report.trials}
    again = run_sweep(space, trials=3, out=out, heartbeat=1)
    assert [t.number for t in again.trials] == [0, 1, 2]
    assert stamps == {r: (Path(r) / rundir.FINAL).stat().st_mtime_ns for r in stamps}

    code, stdout, _ = run_cli(monkeypatch, capsys, "sweep", "--report", "--space", str(space),
                              "--out", str(out))  # fmt: skip
    assert code == 0
    rows = [line.split() for line in stdout.splitlines()[1:] if line.split()[0].isdigit()]
    assert sorted(int(r[0]) for r in rows) == [0, 1, 2]
    assert [float(r[2]) for r in rows] == sorted((float(r[2]) for r in rows), reverse=True)

    other = tmp_path / "other"
    other.mkdir()
    changed = write_space(other, source, SPACE.replace("0.1, log", "0.2, log"))
    with pytest.raises(ConfigError, match="another space"):
        run_sweep(changed, trials=3, out=out, heartbeat=1)


def _poll(db: Path) -> tuple[list[tuple[int, str]], dict[int, str]]:
    """(number, state) of every trial and the run directory of every trial that has one,
    read straight from the SQLite file."""
    with sqlite3.connect(db, timeout=10) as connection:
        trials = connection.execute("select number, state from trials").fetchall()
        runs = connection.execute(
            "select t.number, a.value_json from trials t join trial_user_attributes a "
            "on a.trial_id = t.trial_id where a.key = 'run'"
        ).fetchall()
    return trials, {number: json.loads(value) for number, value in runs}


def test_killed_sweep_resumes_without_repeating_finished_trials(tmp_path, source):
    space = write_space(tmp_path, source, per_class=8, epochs=5)
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "cli", "sweep", "--space", str(space), "--trials", "4",
               "--out", str(out), "--heartbeat", "1", "--no-prune", "--quiet"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE)
    killed = None
    deadline = time.monotonic() + 60
    while killed is None and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
        if not (out / "study.db").exists():
            continue
        try:
            trials, runs = _poll(out / "study.db")
        except sqlite3.OperationalError:  # tables not made yet, or locked
            continue
        running = [n for n, s in trials if s == "RUNNING" and n in runs]
        started = [n for n in running if (Path(runs[n]) / rundir.CHECKPOINTS).exists()]
        if any(s == "COMPLETE" for _, s in trials) and started:
            first.send_signal(signal.SIGKILL)
            killed = started[0]
    first.wait()
    assert killed is not None, first.stderr.read().decode()

    trials, runs = _poll(out / "study.db")
    done = {n: Path(runs[n]) for n, s in trials if s == "COMPLETE"}
    assert done and all(n != killed for n in done)

    def stamps(run: Path) -> tuple[int, ...]:
        return tuple((run / f).stat().st_mtime_ns for f in (rundir.RUN_H5, rundir.FINAL))

    before = {n: stamps(run) for n, run in done.items()}
    interrupted = Path(runs[killed])
    init_stamp = (interrupted / rundir.INIT).stat().st_mtime_ns

    second = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=90)
    assert second.returncode == 0, second.stderr.decode()

    study = load(out)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 4
    assert [t.number for t in study.get_trials() if t.state.name == "FAIL"] == [killed]
    assert {n: stamps(run) for n, run in done.items()} == before
    old = study.trials[killed]
    retry = [t for t in complete if t.system_attrs.get("failed_trial") == killed]
    assert len(retry) == 1 and retry[0].params == old.params
    assert Path(retry[0].user_attrs["run"]) == interrupted
    # Resumed, not trained again from scratch: the initial weights were written once.
    assert (interrupted / rundir.INIT).stat().st_mtime_ns == init_stamp
    assert rundir.read_status(interrupted)[0] == "completed"
    assert len({t.user_attrs["run"] for t in complete}) == 4


def test_two_workers_share_one_sqlite_study(tmp_path, source):
    space = write_space(tmp_path, source, per_class=8, epochs=4)
    out = tmp_path / "sweep"
    report = run_sweep(space, trials=6, out=out, workers=2, heartbeat=1)

    study = load(out)
    states = [t.state.name for t in study.get_trials()]
    assert states.count("COMPLETE") == 6 and "FAIL" not in states and "RUNNING" not in states
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len({t.number for t in complete}) == 6
    assert len({t.user_attrs["run"] for t in complete}) == 6
    assert len({t.user_attrs["worker"] for t in complete}) == 2
    assert sum(t.state == "COMPLETE" for t in report.trials) == 6
    assert all(rundir.read_status(Path(t.user_attrs["run"]))[0] == "completed" for t in complete)


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def test_a_pruned_trial_stops_after_the_epoch_it_reported(tmp_path, source):
    space = read_space(write_space(tmp_path, source, epochs=3))
    study = optuna.create_study(direction="maximize", pruner=_AlwaysPrune())
    trial = study.ask()
    events: list[dict] = []
    with pytest.raises(optuna.TrialPruned, match="after epoch 1"):
        run_trial(trial, space, tmp_path / "runs", progress=events.append)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)

    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1]
    assert not any(e["event"] == "done" for e in events)
    frozen = study.trials[0]
    assert frozen.state.name == "PRUNED"
    assert frozen.intermediate_values == {1: epochs[0]["eval_acc"]}
    run = Path(frozen.user_attrs["run"])
    assert rundir.read_status(run)[0] == "running"
    assert not (run / rundir.FINAL).exists()


@pytest.mark.parametrize(
    "space, message",
    [
        ("[space]\nlearning-rate = { low = 0.1, high = 1.0 }", "unknown option 'learning-rate'"),
        ("[space]\nlr = { low = 0.1, high = 0.01 }", "low (0.1) must be below high (0.01)"),
        ("[space]\nlr = { low = 0.0, high = 0.1, log = true }", "log range needs low > 0"),
        ("[space]\nlr = { low = 0.01, high = 0.1, per-group = true }", "per-group works for"),
        ("[space]\nlr-decay = { low = 0.5, high = 1.5 }", "lr-decay=1.5: --lr-decay must lie"),
        ("[space]\nfreeze-groups = { choices = [] }", "choices must be a non-empty list"),
        ("[space]\nlr = { low = 0.01, high = 0.1, step = 2 }", "unknown key 'step'"),
        ("[spaces]\nlr = { low = 0.01, high = 0.1 }", "unknown table [spaces]"),
        ("[space]\nlr = 0.1", "give { low = .., high = .. }"),
    ],
)
def test_a_bad_space_file_is_one_line_before_any_trial(
    tmp_path, source, monkeypatch, capsys, space, message
):
    path = write_space(tmp_path, source, space)
    out = tmp_path / "sweep"
    code, stdout, stderr = run_cli(
        monkeypatch, capsys, "sweep", "--space", str(path), "--trials", "2", "--out", str(out)
    )
    assert code == 1 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("error: ")
    assert message in stderr
    assert not out.exists()


def test_missing_initial_weights_stop_the_sweep_before_it_starts(tmp_path, monkeypatch, capsys):
    path = write_space(tmp_path, tmp_path / "no-such-run")
    out = tmp_path / "sweep"
    code, _, stderr = run_cli(monkeypatch, capsys, "sweep", "--space", str(path), "--trials",
                              "1", "--out", str(out))  # fmt: skip
    assert code == 1 and len(stderr.strip().splitlines()) == 1
    assert "no-such-run" in stderr and not out.exists()


def test_the_example_space_parses_and_checks(source):
    space = read_space(ROOT / "examples" / "sweep_space.toml")
    assert space.columns == [
        "transfer-groups", "freeze-groups", "lr", "lr-decay",
        *(f"l2sp.{g}" for g in range(6)), *(f"l2.{g}" for g in range(6)),
    ]  # fmt: skip
    assert space.base["init"] == "results/demo/source"
    # With a source run that exists, every end of every range builds a valid run.
    check_space(dataclasses.replace(space, base={**space.base, "init": str(source)}))
    point = space.sample(optuna.trial.FixedTrial(space.low_corner()))
    assert point["l2sp"] == [1e-4] * 6 and point["transfer-groups"] == 2


def test_report_of_a_missing_study_is_one_line(tmp_path, monkeypatch, capsys):
    code, _, stderr = run_cli(monkeypatch, capsys, "sweep", "--report", "--study", "nope",
                              "--out", str(tmp_path))  # fmt: skip
    assert code == 1 and "no sweep in" in stderr
    with pytest.raises(ConfigError, match="no sweep"):
        sweep_report(out=tmp_path, study="nope")


def test_the_progress_bar_starts_over_for_the_run_after_a_pruned_one():
    from cli.progress import ProgressBar

    def step(step: int, steps: int) -> dict:
        return dict(event="step", epoch=1, epochs=2, step=step, steps=steps, loss=1.0,
                    acc=0.5, lr=0.1, images_per_s=10.0)  # fmt: skip

    bar = ProgressBar()
    bar(step(8, 20))  # a trial pruned here: no "done" event
    bar(step(2, 12))
    assert (bar.bar.total, bar.bar.n) == (12, 2)
    bar.close()
