"""The sweep: every trial is a complete run directory whose configuration is the trial's
point; a killed sweep resumes without repeating finished trials; two workers share one
SQLite study; pruning stops a run after the epoch the pruner rejects; a bad space file
stops with one line before any trial runs; with --splits a trial's objective is the mean of
its split seeds' runs, with --objective folds the mean of its cross-validated folds' runs,
and auto cross-validates when one validation split cannot rank the trials; trials the
validation data cannot separate are said to tie, and the best among them is the one of
lowest validation loss."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import h5py
import optuna
import pytest
from conftest import fast_config
from PIL import Image
from test_cli import run_cli

from finetune import engine, rundir
from finetune.config import build_config
from finetune.errors import ConfigError
from finetune.runs import run_summary
from landscape.tune.space import check_space, read_space
from landscape.tune.sweep import (
    TIES,
    SweepReport,
    SweepTrial,
    best_config,
    choose_objective,
    default_storage,
    run_sweep,
    run_trial,
    sweep_report,
    value_se,
)
from landscape.tune.sweep_options import SweepOptions

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
    report = run_sweep(space, SweepOptions(trials=3, heartbeat=1), out=out)

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

    # The best: of the trials tied with the highest value, the one of lowest validation loss.
    best = report.best
    assert report.tied[0].value == max(t.value for t in report.trials)
    assert best == min(report.tied, key=lambda t: (t.eval_loss, t.number))
    assert best.eval_loss == run_summary(best.run)["final_eval_loss"]
    values = best_config(out=out, study="space")
    assert (
        build_config("finetune", values).hash() == rundir.read_config(Path(best.run))["config_hash"]
    )

    # Run again: the study already holds 3 finished trials, so nothing is trained.
    stamps = {t.run: (Path(t.run) / rundir.FINAL).stat().st_mtime_ns for t in report.trials}
    again = run_sweep(space, SweepOptions(trials=3, heartbeat=1), out=out)
    assert [t.number for t in again.trials] == [0, 1, 2]
    assert stamps == {r: (Path(r) / rundir.FINAL).stat().st_mtime_ns for r in stamps}

    code, stdout, _ = run_cli(monkeypatch, capsys, "sweep", "--report", "--space", str(space),
                              "--out", str(out))  # fmt: skip
    assert code == 0
    rows = [line.split() for line in stdout.splitlines()[1:] if line.split()[0].isdigit()]
    assert sorted(int(r[0]) for r in rows) == [0, 1, 2]
    # The best first, then by value.
    assert int(rows[0][0]) == report.best.number
    assert [float(r[2]) for r in rows[1:]] == sorted((float(r[2]) for r in rows[1:]), reverse=True)

    other = tmp_path / "other"
    other.mkdir()
    changed = write_space(other, source, SPACE.replace("0.1, log", "0.2, log"))
    with pytest.raises(ConfigError, match="another space"):
        run_sweep(changed, SweepOptions(trials=3, heartbeat=1), out=out)


def poll_trials(connection: Any) -> tuple[list[tuple[int, str]], dict[int, dict[str, Any]]]:
    """(number, state) of every trial and the user attributes of every trial, read straight
    from the study's tables through a DB-API connection (SQLite or PostgreSQL)."""
    trials = connection.execute("select number, state from trials").fetchall()
    rows = connection.execute(
        "select t.number, a.key, a.value_json from trials t join trial_user_attributes a "
        "on a.trial_id = t.trial_id"
    ).fetchall()
    attrs: dict[int, dict[str, Any]] = {}
    for number, key, value in rows:
        attrs.setdefault(number, {})[key] = json.loads(value)
    return trials, attrs


def _poll(db: Path) -> tuple[list[tuple[int, str]], dict[int, str]]:
    """(number, state) of every trial and the run directory of every trial that has one,
    read straight from the SQLite file."""
    with sqlite3.connect(db, timeout=10) as connection:
        trials, attrs = poll_trials(connection)
    return trials, {number: a["run"] for number, a in attrs.items() if "run" in a}


def started_trial(trials: list[tuple[int, str]], runs: dict[int, str]) -> int | None:
    """A running trial whose run has written a checkpoint and not yet its final weights,
    once another trial is complete: one to kill in the middle of its training while a
    finished run is there to keep."""
    running = [n for n, s in trials if s == "RUNNING" and n in runs]
    started = [n for n in running if _training(Path(runs[n]))]
    if any(s == "COMPLETE" for _, s in trials) and started:
        return started[0]
    return None


def _training(run: Path) -> bool:
    """Whether a run is between its first checkpoint and its final weights."""
    return (run / rundir.CHECKPOINTS).exists() and not (run / rundir.FINAL).exists()


def stamps(run: Path) -> tuple[int, ...]:
    """When a run's history and final weights were written: unchanged while it is kept."""
    return tuple((run / f).stat().st_mtime_ns for f in (rundir.RUN_H5, rundir.FINAL))


@pytest.mark.extended  # two sweep processes, each importing torch and timm
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
        killed = started_trial(trials, runs)
        if killed is not None:
            first.send_signal(signal.SIGKILL)
    first.wait()
    assert killed is not None, first.stderr.read().decode()

    trials, runs = _poll(out / "study.db")
    done = {n: Path(runs[n]) for n, s in trials if s == "COMPLETE"}
    assert done and all(n != killed for n in done)

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
    # The killed and resumed sweep is explained from its complete trials alone.
    explain = [sys.executable, "-m", "cli", "explain", "--sweep", str(out), "--examples",
               "32", "--batch-size", "8", "--bn-batches", "1", "--probe-share", "0.5",
               "--quiet"]  # fmt: skip
    explained = subprocess.run(explain, cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert explained.returncode == 0, explained.stderr.decode()
    with h5py.File(out / "explain.h5") as f:
        assert f.attrs["kind"] == "explain_sweep" and f["summary"].attrs["complete"] == 4
        assert killed not in f["trials/number"][()].tolist()


def test_two_workers_share_one_sqlite_study(tmp_path, source):
    space = write_space(tmp_path, source, per_class=8, epochs=4)
    out = tmp_path / "sweep"
    # No pruning: which trial a median pruner stops depends on the two workers' timing.
    options = SweepOptions(trials=6, workers=2, heartbeat=1, prune=False)
    report = run_sweep(space, options, out=out)

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

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    bar = ProgressBar(stream=Terminal())
    bar(step(8, 20))  # a trial pruned here: no "done" event
    bar(step(2, 12))
    assert (bar.bar.total, bar.bar.n) == (12, 2)
    bar.close()


def trial_row(number: int, value: float, loss: float, examples: int = 5) -> SweepTrial:
    """A complete trial of one split on ``examples`` validation images."""
    return SweepTrial(
        number=number, state="COMPLETE", value=value, test_acc=None, seconds=None,
        params={}, eval_acc=[], run=f"runs/{number}", config=None, values={"lr": number / 100},
        split_values=[value], runs=[f"runs/{number}"], value_se=value_se([value], examples),
        eval_loss=loss, eval_examples=examples,
    )  # fmt: skip


def test_the_standard_error_keeps_a_floor_at_perfect_accuracy():
    # 1.0 on 5 images counts as 5.5 of 6: SE sqrt(5.5/6 * 0.5/6 / 5).
    assert value_se([1.0], 5) == pytest.approx(math.sqrt(5.5 / 6 * 0.5 / 6 / 5))
    assert value_se([0.5], 100) == pytest.approx(0.05)
    # Two splits: the binomial SE over 2n images, or the splits' spread when larger.
    assert value_se([0.6, 0.6], 50) == pytest.approx(math.sqrt(0.6 * 0.4 / 100), rel=1e-2)
    assert value_se([0.2, 1.0], 5) == pytest.approx(0.4)


def test_trials_tied_on_validation_accuracy_are_broken_by_validation_loss(tmp_path):
    # Three trials at 1.0 on 5 images (SE 0.12) tie; 0.8 is a step of 0.2 below, apart.
    trials = [trial_row(0, 1.0, 0.5), trial_row(1, 0.8, 0.1), trial_row(2, 1.0, 0.3),
              trial_row(3, 1.0, 0.4)]  # fmt: skip
    report = SweepReport(tmp_path / "sweep.h5", "s", "sqlite://", [], trials)
    assert [t.number for t in report.tied] == [0, 2, 3]
    assert report.best.number == 2
    lines = report.table().splitlines()
    assert lines[1].split()[0] == "2" and "1 ± 0.12" in lines[1]
    warning = [line for line in lines if line.startswith("warning:")]
    assert len(warning) == 1
    assert "2 other trial(s)" in warning[0] and "validation loss" in warning[0]
    assert "--splits" in warning[0] and "5 validation images" in warning[0]

    # Equal losses: the lower number. A clear best: no warning.
    even = [trial_row(4, 1.0, 0.2), trial_row(3, 1.0, 0.2)]
    assert SweepReport(tmp_path / "e.h5", "s", "sqlite://", [], even).best.number == 3
    clear = SweepReport(tmp_path / "c.h5", "s", "sqlite://", [],
                        [trial_row(0, 0.6, 0.1), trial_row(1, 1.0, 0.9)])  # fmt: skip
    assert clear.best.number == 1 and clear.tied == [clear.best]
    assert "warning" not in clear.table()


def test_best_config_picks_the_reports_best_trial(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    study = optuna.create_study(study_name="s", storage=default_storage(out), direction="maximize")
    for row in (trial_row(0, 1.0, 0.5), trial_row(1, 0.8, 0.1), trial_row(2, 1.0, 0.3)):
        keys = ("values", "run", "runs", "split_values", "value_se", "eval_loss", "eval_examples")
        attrs = {k: getattr(row, k) for k in keys}
        study.add_trial(optuna.trial.create_trial(value=row.value, user_attrs=attrs))
    assert study.best_trial.number == 0  # Optuna's own pick: the first of the tie

    report = sweep_report(out=out, study="s")
    assert report.best.number == 2
    assert best_config(out=out, study="s") == {"lr": 0.02}
    with h5py.File(report.path) as f:
        summary = f["summary"].attrs
        assert (summary["best_trial"], summary["tied"]) == (2, 2)
        assert list(f["trials/eval_loss"][:]) == [0.5, 0.1, 0.3]
        assert f["trials/split_values"].shape == (3, 1)


def test_splits_run_each_trial_once_per_split_seed(tmp_path, source, monkeypatch, capsys):
    space = write_space(tmp_path, source)
    out = tmp_path / "sweep"
    report = run_sweep(space, SweepOptions(trials=1, splits=2, heartbeat=1), out=out)

    (trial,) = report.trials
    assert trial.state == "COMPLETE" and len(trial.runs) == 2 and trial.runs[0] == trial.run
    runs = [Path(run) for run in trial.runs]
    configs = [rundir.read_config(run)["config"] for run in runs]
    assert [c["data"]["split_seed"] for c in configs] == [0, 1]
    # The same options otherwise.
    for c in configs:
        c["data"].pop("split_seed")
    assert configs[0] == configs[1]
    summaries = [run_summary(run) for run in runs]
    accs = [s["final_eval_acc"] for s in summaries]
    assert trial.split_values == accs
    assert trial.value == pytest.approx(sum(accs) / 2)
    assert trial.eval_loss == pytest.approx(sum(s["final_eval_loss"] for s in summaries) / 2)
    examples = rundir.read_config(runs[0])["data"]["eval_examples"]
    assert trial.eval_examples == examples
    assert trial.value_se == pytest.approx(value_se(accs, examples))
    with h5py.File(report.path) as f:
        assert f.attrs["splits"] == 2
        assert list(f["trials/split_values"][0]) == accs
        assert json.loads(f["trials/runs"].asstr()[0]) == trial.runs
    assert "mean of 2 split seeds" in report.table()

    # Resumed without --splits, the study keeps its 2; another number is refused.
    assert run_sweep(space, SweepOptions(trials=1, heartbeat=1), out=out).objective.splits == 2
    with pytest.raises(ConfigError, match="made with --splits 2"):
        run_sweep(space, SweepOptions(trials=1, splits=1, heartbeat=1), out=out)


def test_splits_below_one_is_one_line_naming_the_flag(tmp_path, source, monkeypatch, capsys):
    path = write_space(tmp_path, source)
    out = tmp_path / "sweep"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "sweep", "--space", str(path),
                                   "--trials", "2", "--splits", "0", "--out", str(out))  # fmt: skip
    assert code == 1 and stdout == ""
    assert stderr.strip().splitlines() == [
        "error: --splits must be >= 1 (split seeds per trial), got 0"
    ]
    assert not out.exists()


def test_a_study_from_before_splits_reads_its_measures_from_the_run(tmp_path, source):
    run = tmp_path / "runs" / "old"
    engine.train(fast_config(init=str(source), epochs=1, train_per_class=2), run, command="test")
    summary = run_summary(run)
    out = tmp_path / "sweep"
    out.mkdir()
    study = optuna.create_study(study_name="old", storage=default_storage(out))
    attrs = {"run": str(run), "values": {"lr": 0.01}, "test_acc": float(summary["test_acc"])}
    study.add_trial(
        optuna.trial.create_trial(value=float(summary["final_eval_acc"]), user_attrs=attrs)
    )

    (trial,) = sweep_report(out=out, study="old").trials
    examples = rundir.read_config(run)["data"]["eval_examples"]
    assert trial.split_values == [summary["final_eval_acc"]] and trial.runs == [str(run)]
    assert trial.eval_loss == summary["final_eval_loss"] and trial.eval_examples == examples
    assert trial.value_se == value_se([summary["final_eval_acc"]], examples)


def image_tree(root: Path, train: int, classes: int = 5, val_fraction: float = 0.1) -> str:
    """A folder: spec of ``classes`` classes of ``train`` training images and one test
    image each (4x4 PNGs, a colour per class), its validation split carved."""
    for split, count in (("train", train), ("test", 1)):
        for c in range(classes):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (4, 4), (60 * c, (7 * i) % 256, 90)).save(folder / f"{i}.png")
    return f"folder:{root}"


def target(spec: str, **options) -> object:
    return build_config("finetune", {}, {"data": spec, "image_size": 16, **options})


def binomial_se(accuracy: float, n: int) -> float:
    """sqrt(p'(1-p')/n) at the accuracy moved half an image towards 1/2."""
    p = (n * accuracy + 0.5) / (n + 1)
    return math.sqrt(p * (1 - p) / n)


def test_five_validation_images_cannot_rank_and_auto_cross_validates(tmp_path):
    # The user's target: 5 classes of 10 images; the carve keeps 1 of each for validation.
    base = target(image_tree(tmp_path / "tree", train=10))
    one, over_fifty = 1 / 6, math.sqrt(45.5 / 51 * 5.5 / 51 / 50)  # 0.9 on 5 is 5/6; on 50
    assert binomial_se(0.9, 5) == pytest.approx(one)

    auto = choose_objective(base)
    assert (auto.kind, auto.runs_per_trial, auto.examples) == ("folds", 5, 50)
    assert auto.se == pytest.approx(over_fifty) and (auto.splits, auto.folds) == (1, 5)
    assert auto.message == (
        "the objective cannot rank: 5 validation images, standard error 0.17 at 90% "
        "accuracy, larger than the 0.02 differences it must rank (--resolution); using "
        "5-fold cross-validation over the 50 training images (standard error 0.044); "
        f"still coarser than --resolution: {TIES}"
    )
    # Folds fine enough for a coarser resolution; one split when even it is fine enough.
    assert "still coarser" not in choose_objective(base, resolution=0.05).message
    assert choose_objective(base, resolution=0.2) == dataclasses.replace(
        choose_objective(base, requested="split"), resolution=0.2, message=""
    )

    split = choose_objective(base, requested="split")
    assert (split.kind, split.runs_per_trial, split.examples) == ("split", 1, 5)
    assert split.se == pytest.approx(one) and split.message.endswith(TIES)
    three = choose_objective(base, requested="split", splits=3)
    assert three.examples == 15 and three.se == pytest.approx(binomial_se(0.9, 15))
    assert "3 split seeds of 5 validation images" in three.message
    two = choose_objective(base, requested="folds", folds=2)
    assert (two.kind, two.folds, two.examples) == ("folds", 2, 50)
    assert two.se == pytest.approx(over_fifty) and two.message.endswith(TIES)
    assert "in place of 3 split seeds" in choose_objective(base, splits=3).message
    with pytest.raises(ConfigError, match="--splits 2 runs split seeds; --objective folds"):
        choose_objective(base, requested="folds", splits=2)


def test_a_large_validation_split_ranks_with_one_split(tmp_path):
    base = target(image_tree(tmp_path / "tree", train=250, classes=2), val_fraction=0.5)
    chosen = choose_objective(base)
    assert (chosen.kind, chosen.runs_per_trial, chosen.examples) == ("split", 1, 250)
    assert chosen.se == pytest.approx(binomial_se(0.9, 250)) and chosen.se < 0.02
    assert chosen.message == ""


def test_a_native_validation_split_is_kept_and_said_to_be_coarse():
    base = target("synthetic:near")  # 20 validation images of each of 10 classes
    chosen = choose_objective(base)
    assert (chosen.kind, chosen.examples) == ("split", 200)
    assert chosen.se == pytest.approx(binomial_se(0.9, 200)) and chosen.se > 0.02
    assert "synthetic:near has a validation split of its own" in chosen.message
    assert chosen.message.endswith(TIES)
    with pytest.raises(ConfigError, match="--objective folds cross-validates on the training"):
        choose_objective(base, requested="folds")


def test_auto_keeps_split_seeds_when_the_folds_cannot_be_made(tmp_path):
    base = target(image_tree(tmp_path / "tree", train=3))
    chosen = choose_objective(base)
    assert chosen.kind == "split"
    assert "cross-validation is not possible (--folds 5 but class 'c0'" in chosen.message
    with pytest.raises(ConfigError, match="--folds 5 but class 'c0'"):
        choose_objective(base, requested="folds")


FOLDER_SPACE = """
[base]
model = "test_resnet"
init = "{source}"
data = "{data}"
image-size = 16
epochs = 1
batch-size = 8
eval-batch-size = 64
[space]
lr = {{ low = 1e-3, high = 0.1, log = true }}
"""


def folder_space(tmp_path: Path, source: Path) -> Path:
    """A space on 3 classes of 4 training images (3 carved for validation, 12 to fold)."""
    data = image_tree(tmp_path / "tree", train=4, classes=3)
    path = tmp_path / "space.toml"
    path.write_text(FOLDER_SPACE.format(source=source, data=data))
    return path


def test_folds_score_a_trial_by_the_mean_of_its_folds(tmp_path, source):
    space = folder_space(tmp_path, source)
    out = tmp_path / "sweep"
    report = run_sweep(
        space, SweepOptions(trials=2, objective="folds", folds=2, heartbeat=1), out=out
    )

    assert (report.objective.kind, report.objective.folds, report.objective.examples) == (
        "folds", 2, 12,
    )  # fmt: skip
    assert [t.state for t in report.trials] == ["COMPLETE"] * 2
    for trial in report.trials:
        records = [rundir.read_config(Path(run)) for run in trial.runs]
        data = [r["config"]["data"] for r in records]
        folds = [(d["val_fold"], d["folds"], d["split_seed"]) for d in data]
        assert folds == [(0, 2, 0), (1, 2, 0)]
        accs = []
        for run in trial.runs:
            with h5py.File(Path(run) / rundir.RUN_H5) as f:
                accs.append(float(f["summary"].attrs["final_eval_acc"]))
        assert trial.split_values == accs
        assert trial.value == pytest.approx((accs[0] + accs[1]) / 2)
        # The SE over both folds' images: binomial over the 12, at least the folds' spread.
        assert sum(r["data"]["eval_examples"] for r in records) == 12
        spread = abs(accs[0] - accs[1]) / 2
        assert trial.value_se == pytest.approx(max(binomial_se(trial.value, 12), spread))
    assert "value = final_eval_acc (validation, mean of 2 cross-validated folds)" in (
        report.table()
    )
    assert "note: the objective cannot rank: 2-fold cross-validation over 12" in report.table()
    with h5py.File(report.path) as f:
        assert (f.attrs["objective_kind"], f.attrs["folds"], f.attrs["splits"]) == ("folds", 2, 1)
        assert f.attrs["resolution"] == 0.02
        assert f.attrs["objective_note"] == report.objective.message
        assert f["trials/split_values"].shape == (2, 2)
    assert "val-fold" not in best_config(out=out, study="space")

    # Resumed without objective options, the study keeps its own; other ones are refused.
    stamps = {r: (Path(r) / rundir.FINAL).stat().st_mtime_ns for t in report.trials
              for r in t.runs}  # fmt: skip
    again = run_sweep(space, SweepOptions(trials=2, heartbeat=1), out=out)
    assert again.objective == report.objective
    assert stamps == {r: (Path(r) / rundir.FINAL).stat().st_mtime_ns for r in stamps}
    for options, message in [
        (dict(objective="split"), "made with --objective folds"),
        (dict(folds=3), "made with --folds 2"),
        (dict(splits=2), "made with --objective folds"),
        (dict(resolution=0.05), "made with --resolution 0.02"),
    ]:
        with pytest.raises(ConfigError, match=message):
            run_sweep(space, SweepOptions(trials=2, heartbeat=1, **options), out=out)


def test_the_cli_says_before_the_trials_when_the_objective_cannot_rank(
    tmp_path, source, monkeypatch, capsys
):
    space = folder_space(tmp_path, source)
    out = tmp_path / "sweep"
    code, stdout, stderr = run_cli(monkeypatch, capsys, "sweep", "--space", str(space),
                                   "--trials", "1", "--folds", "2", "--out", str(out))  # fmt: skip
    assert code == 0, stderr
    message = stderr.splitlines()[0]  # before the trial's progress and its line
    assert message.startswith("the objective cannot rank: 3 validation images, standard error")
    assert "; using 2-fold cross-validation over the 12 training images" in message
    assert f"note: {message}" in stdout.splitlines()
    assert "mean of 2 cross-validated folds" in stdout

    code, stdout, stderr = run_cli(monkeypatch, capsys, "sweep", "--space", str(space),
                                   "--trials", "1", "--objective", "best",
                                   "--out", str(tmp_path / "bad"))  # fmt: skip
    assert code == 2 and stdout == ""  # outside the flag's choices: a usage error
    (line,) = stderr.strip().splitlines()
    assert line.startswith("error:") and "--objective" in line
    assert "'best' is not one of 'auto', 'split', 'folds'" in line
    assert not (tmp_path / "bad").exists()
