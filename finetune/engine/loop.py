"""Training a run: ``train`` starts one in a new folder and ``resume`` continues one from
its last checkpoint. Both run the epoch loop: an epoch's stage (LP-FT) and learning-rate
scales (Auto-RGN), its steps with their logging and checkpoints, the weights kept at the
end of every --keep-every-th epoch, the evaluation at the end of every --eval-every-th
epoch, and at the end of the run the final weights, summary and status of the run
directory (docs/design.md)."""

from __future__ import annotations

import itertools
import shlex
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune import rundir
from finetune.config import RunConfig, TrainConfig, build_config
from finetune.data.loader import epoch_order, mix_seed
from finetune.distributed import Processes, share
from finetune.engine.auto_lr import RGN_DRAWS, group_means, rgn_scales
from finetune.engine.checkpoint import load_checkpoint, save_checkpoint
from finetune.engine.distance import group_distances
from finetune.engine.history import History
from finetune.engine.meter import Diverged, EpochMeter
from finetune.engine.provenance import config_record, write_run_h5
from finetune.engine.setup import Setup, build_setup
from finetune.engine.stages import Stage, enter, set_scales, stage_of
from finetune.engine.step import StepTools, train_step
from finetune.errors import RunDirError
from finetune.evaluation.measure import evaluate
from finetune.models import InitReport
from finetune.regularisers.penalties import penalty_names, penalty_per_group

Progress = Callable[[dict[str, Any]], None]


@dataclass
class RunResult:
    """What a finished (or failed) run reports back."""

    run: Path
    status: str
    reason: str
    summary: dict[str, float]
    init_report: InitReport | None = None
    group_names: list[str] = field(default_factory=list)


def train(
    config: RunConfig,
    out: str | Path,
    *,
    progress: Progress | None = None,
    command: str | None = None,
) -> RunResult:
    """Train a new run into the empty or missing folder ``out``.

    Everything that can fail on user input (dataset, model, initial weights) is checked
    before the folder is created, so an error leaves nothing behind.
    """
    out = Path(out)
    rundir.check_new_run_dir(out)
    setup = build_setup(config)
    command = command if command is not None else shlex.join(sys.argv)
    processes = setup.runtime.processes
    # Every process has checked ``out`` before the main one starts filling it.
    processes.wait()
    if processes.main:
        out.mkdir(parents=True, exist_ok=True)
        rundir.write_status(out, "running")
        rundir.write_json(out / rundir.CONFIG, config_record(setup, command))
        rundir.save_weights(out / rundir.INIT, setup.init_state)
        if setup.fisher:
            rundir.save_weights(out / rundir.FISHER, setup.fisher)
    return _run(setup, out, History(), 0, progress, command)


def resume(run: str | Path, *, progress: Progress | None = None) -> RunResult:
    """Continue an interrupted run from its last checkpoint. On the CPU the result is
    bit-identical to a run that was never interrupted."""
    run = Path(run)
    state, _ = rundir.read_status(run)
    if state == "completed":
        raise RunDirError(f"{run} has already completed")
    record = rundir.read_config(run)
    config = build_config(record["kind"], record["config"])
    setup = build_setup(config)
    if config.model.init:
        rundir.check_init_weights(run, record, config.model.init, setup.init_report.digest)
    weights, saved = load_checkpoint(run)
    if weights is None:
        step, history = 0, History()
    else:
        setup.model.load_state_dict(weights)
        setup.optimizer.load_state_dict(saved["optimizer"])
        step, history = int(saved["step"]), History.from_state(saved["history"])
    # Every process has read the checkpoint before the main one may replace it.
    setup.runtime.processes.wait()
    if setup.runtime.processes.main:
        rundir.write_status(run, "running")
    return _run(setup, run, history, step, progress, record.get("command", ""))


def process_share(order: torch.Tensor, batch_size: int, processes: Processes) -> torch.Tensor:
    """This process's examples of an epoch: its contiguous share of every global batch of
    ``order``, in order, so that batches of ``batch_size // world`` cut it into the shares
    (``finetune.distributed.share``). The whole order on one process."""
    if not processes.parallel:
        return order
    parts = []
    for chunk in order.split(batch_size):
        start, size = share(len(chunk), processes.world, processes.rank)
        parts.append(chunk[start : start + size])
    return torch.cat(parts)


@dataclass
class _Loop:
    """One call of the epoch loop: the setup, where it writes, and what its steps reuse."""

    s: Setup
    out: Path
    command: str
    history: History
    emit: Progress
    tools: StepTools

    def checkpoint(self, step: int) -> None:
        """Save the checkpoint of global ``step`` and the history so far (main process)."""
        if self.s.runtime.processes.main:
            save_checkpoint(self.out, self.s.model, self.s.optimizer, step, self.history)
            write_run_h5(self.out, self.s, self.history, self.command, {})

    def keep(self, epoch: int) -> None:
        """Keep the weights at the end of ``epoch`` (from 1) as ``epochs/epochK``. Written
        before the epoch's checkpoint, so a resumed run holds every epoch it kept."""
        if self.s.runtime.processes.main:
            weights = rundir.epoch_weights(self.out, epoch)
            rundir.save_weights(weights, self.s.model.state_dict())
        self.history.kept.append(epoch)

    def result(self, status: str, reason: str, summary: dict[str, Any]) -> RunResult:
        """What the run reports back to the caller of ``train`` or ``resume``."""
        group_names = [g.name for g in self.s.groups]
        return RunResult(self.out, status, reason, summary, self.s.init_report, group_names)


def _run(
    s: Setup,
    out: Path,
    history: History,
    step: int,
    progress: Progress | None,
    command: str,
) -> RunResult:
    """Train from global ``step`` to the end, then write the final weights and summary."""
    emit = progress if progress is not None and s.runtime.processes.main else _ignore
    loop = _Loop(s, out, command, history, emit, StepTools.for_run(s))
    history.penalty_names = penalty_names(s.buckets)
    try:
        while step < loop.tools.total_steps:
            epoch, first = divmod(step, s.steps_per_epoch)
            meter = EpochMeter(s, epoch, first, history.partial_epoch if first else {})
            step, lr = _train_epoch(loop, meter, epoch, first, step)
            if _keeps(s.config.train, epoch):
                loop.keep(epoch + 1)
            if _evaluates(s.config.train, epoch):
                _end_epoch(loop, meter, epoch, step, lr)
            else:
                history.interval_seconds += meter.elapsed()
    except Diverged as err:
        return _fail(loop, str(err))
    return _finish(loop, step)


def _ignore(event: dict[str, Any]) -> None:
    """The progress callback of a run nobody watches (and of every process but the main)."""


def _train_epoch(
    loop: _Loop, meter: EpochMeter, epoch: int, first: int, step: int
) -> tuple[int, float]:
    """The steps of ``epoch`` from its ``first``, starting at global ``step``: logged every
    --log-every steps and at the epoch's end, checkpointed every --checkpoint-every steps
    within it. Returns the global step after the epoch and the last step's lr."""
    s, history, train = loop.s, loop.history, loop.s.config.train
    stage = _start_epoch(loop, epoch, first)
    for i, batch in enumerate(_epoch_batches(s, epoch, first), start=first):
        lr = train_step(s, loop.tools, stage, batch, i, step, meter, history)
        step += 1
        last_of_epoch = i == s.steps_per_epoch - 1
        if step % train.log_every == 0 or last_of_epoch:
            _log_steps(loop, meter, epoch, step, i, lr)
        if train.checkpoint_every and step % train.checkpoint_every == 0 and not last_of_epoch:
            meter.flush(i + 1, history)
            history.partial_epoch = meter.partial()
            loop.checkpoint(step)
    history.partial_epoch = {}
    return step, lr


def _start_epoch(loop: _Loop, epoch: int, first: int) -> Stage:
    """Enter the stage of ``epoch`` (from its step ``first``). At the epoch's start every
    tensor gets its learning-rate scale: the stage's, times its normalised relative gradient
    norm under --auto-lr rgn (recorded per group); a run resumed within the epoch has them
    from the optimizer's saved state."""
    s = loop.s
    stage = stage_of(s.stages, epoch)
    enter(stage, s.model)
    if first == 0:
        scales = dict(stage.lr_scales)
        if s.config.policy.auto_lr == "rgn":
            batches = enumerate(_epoch_batches(s, epoch, 0))
            seed = mix_seed(loop.tools.aug_seed, epoch, RGN_DRAWS)
            rgn = rgn_scales(s, stage, itertools.islice(batches, s.config.policy.rgn_batches), seed)
            loop.history.rgn_scale.append(group_means(rgn, s.groups))
            scales.update({name: scales[name] * r for name, r in rgn.items()})
        set_scales(s.optimizer, scales)
    return stage


def _epoch_batches(s: Setup, epoch: int, first: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This process's batches of ``epoch`` from its step ``first`` on, in the order the
    order seed stream gives the epoch."""
    processes, bs = s.runtime.processes, s.config.train.batch_size
    local_bs = bs // processes.world
    order = epoch_order(len(s.train_set), s.config.train.stream_seed("order"), epoch)
    mine = process_share(order[: s.usable], bs, processes)
    return s.train_batches.iterate(mine[first * local_bs :], local_bs)


def _log_steps(loop: _Loop, meter: EpochMeter, epoch: int, step: int, i: int, lr: float) -> None:
    """Read the losses since the last log back to the host and report a step event."""
    chunk = meter.flush(i + 1, loop.history)
    train = loop.s.config.train
    loop.emit(
        {
            "event": "step",
            "epoch": epoch + 1,
            "epochs": train.epochs,
            "step": step,
            "steps": loop.tools.total_steps,
            "loss": chunk[-1] if chunk else None,
            "acc": meter.accuracy(),
            "lr": lr,
            "images_per_s": meter.seen / meter.elapsed(),
        }
    )


def _evaluates(train: TrainConfig, epoch: int) -> bool:
    """Whether epoch ``epoch`` (from 0) ends with an evaluation: every --eval-every-th
    epoch and the last. Evaluating only reads the model, so training is the same."""
    return (epoch + 1) % train.eval_every == 0 or epoch + 1 == train.epochs


def _keeps(train: TrainConfig, epoch: int) -> bool:
    """Whether the weights at the end of epoch ``epoch`` (from 0) are kept: with
    --keep-every N, every N-th epoch and the last."""
    every = train.keep_every
    return every > 0 and ((epoch + 1) % every == 0 or epoch + 1 == train.epochs)


def _end_epoch(loop: _Loop, meter: EpochMeter, epoch: int, step: int, lr: float) -> None:
    """Evaluate, log the epoch's losses, accuracies, group distances and penalties, report
    an epoch event and checkpoint. The row's seconds are the training time since the last
    row, so that they sum to the run's."""
    s, history = loop.s, loop.history
    epoch_seconds = meter.elapsed()  # the training steps only, before the evaluation
    seconds = history.interval_seconds + epoch_seconds
    history.interval_seconds = 0.0
    eval_loss, eval_acc = evaluate(
        s.model, s.eval_batches, s.eval_prep, s.runtime, forward=s.eval_forward
    )
    distance, relative = group_distances(s.model, s.init_state, s.groups)
    history.group_distance.append(distance)
    history.group_relative_distance.append(relative)
    eps = s.config.reg.sp_smoothing
    history.penalties.append(
        penalty_per_group(s.buckets, len(s.groups), eps, history.penalty_names)
    )
    history.epochs.append(
        {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(history.step_loss[-s.steps_per_epoch :])),
            "train_acc": meter.accuracy(),
            "eval_loss": eval_loss,
            "eval_acc": eval_acc,
            "seconds": seconds,
            "images_per_s": meter.seen / epoch_seconds,
            "lr": lr,
        }
    )
    loop.emit({"event": "epoch", "epochs": s.config.train.epochs, **history.epochs[-1]})
    loop.checkpoint(step)


def _fail(loop: _Loop, reason: str) -> RunResult:
    """Mark the run failed with ``reason``, keeping its history and last good checkpoint."""
    processes = loop.s.runtime.processes
    if processes.main:
        write_run_h5(loop.out, loop.s, loop.history, loop.command, {"status": "failed"})
        rundir.write_status(loop.out, "failed", reason)
    processes.wait()
    return loop.result("failed", reason, {})


def _finish(loop: _Loop, step: int) -> RunResult:
    """Test the final weights, write them with the summary, and mark the run completed."""
    s, history = loop.s, loop.history
    test_loss, test_acc = evaluate(
        s.model, s.test_batches, s.eval_prep, s.runtime, forward=s.eval_forward
    )
    last = history.epochs[-1]
    summary = {
        "status": "completed",
        "epochs": s.config.train.epochs,
        "steps": step,
        "final_train_loss": last["train_loss"],
        "final_eval_loss": last["eval_loss"],
        "final_eval_acc": last["eval_acc"],
        "best_eval_acc": max(e["eval_acc"] for e in history.epochs),
        "test_loss": test_loss,
        "test_acc": test_acc,
        "train_seconds": sum(e["seconds"] for e in history.epochs),
    }
    if s.runtime.processes.main:
        rundir.save_weights(loop.out / rundir.FINAL, s.model.state_dict())
        write_run_h5(loop.out, s, history, loop.command, summary)
        rundir.write_status(loop.out, "completed")
    # No process returns before the run directory is complete.
    s.runtime.processes.wait()
    loop.emit({"event": "done", **summary})
    return loop.result("completed", "", summary)
