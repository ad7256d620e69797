"""The training loop, read top to bottom: build everything from a RunConfig, train with
batched on-device augmentation, evaluate each epoch, checkpoint, and write the run
directory (DESIGN.md). ``train`` starts a run, ``resume`` continues an interrupted one."""

from __future__ import annotations

import math
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from safetensors import safe_open
from timm.layers import convert_sync_batchnorm
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from finetune import __version__, rundir
from finetune.config import RunConfig, build_config
from finetune.data import ImageSet, get_dataset, resolve_spec
from finetune.data.augment import BatchPrep
from finetune.data.block_shuffle import BlockShuffle
from finetune.data.input_spec import InputSpec, resolve_input
from finetune.data.loader import Batches, epoch_order, fits_on_device, mix_seed
from finetune.distributed import Processes, share
from finetune.engine.history import History
from finetune.errors import ConfigError, RunDirError
from finetune.evaluation.batches import FixedBatches, fixed_batches
from finetune.evaluation.measure import evaluate
from finetune.groups import LayerGroup, layer_groups
from finetune.models import (
    InitReport,
    check_input_size,
    classifier_keys,
    create_model,
    load_init,
    read_weights,
)
from finetune.optim import build_optimizer, lr_at, parameter_groups, set_lr
from finetune.policy import (
    ParamPlan,
    format_table,
    freeze,
    group_table,
    plan_parameters,
    reinitialise,
)
from finetune.regularisers.feature_terms import FeatureTerms
from finetune.regularisers.fisher import estimate_fisher
from finetune.regularisers.penalties import (
    Bucket,
    add_to_gradients,
    build_buckets,
    penalty_names,
    penalty_per_group,
    shrink_weights,
)
from finetune.runtime import Runtime, resolve_runtime

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


class Diverged(Exception):
    """The loss became NaN or infinite."""


@dataclass
class _Setup:
    config: RunConfig
    runtime: Runtime
    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    eval_forward: Callable[[torch.Tensor], torch.Tensor]
    groups: list[LayerGroup]
    optimizer: torch.optim.Optimizer
    train_set: ImageSet
    train_batches: Batches
    eval_batches: FixedBatches
    test_batches: FixedBatches
    train_prep: BatchPrep
    eval_prep: BatchPrep
    init_state: dict[str, torch.Tensor]
    plans: list[ParamPlan]
    frozen_norms: list[nn.Module]
    buckets: list[Bucket]
    fisher: dict[str, torch.Tensor]
    features: FeatureTerms | None
    init_report: InitReport | None
    steps_per_epoch: int
    usable: int
    input: InputSpec


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
    setup = _build(config)
    command = command if command is not None else shlex.join(sys.argv)
    processes = setup.runtime.processes
    # Every process has checked ``out`` before the main one starts filling it.
    processes.wait()
    if processes.main:
        out.mkdir(parents=True, exist_ok=True)
        rundir.write_status(out, "running")
        rundir.write_json(out / rundir.CONFIG, _config_record(setup, command))
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
    setup = _build(config)
    weights, saved = _load_checkpoint(run)
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


def describe_plan(config: RunConfig) -> str:
    """The resolved per-group policy of ``config`` as a table, without training."""
    setup = _build(config, for_training=False)
    rows = group_table(setup.model, setup.groups, setup.plans)
    return format_table(rows, config.optim.lr)


def _build(config: RunConfig, *, for_training: bool = True) -> _Setup:
    """Everything a run needs, checked before anything is written. ``for_training=False``
    skips the data passes (Fisher, DELTA's attention) that only training needs."""
    runtime = resolve_runtime(config.train)
    data = config.data
    # Images are decoded at the stored size, so evaluation can centre-crop the input size.
    spec = resolve_input(config.model, data, resolve_spec(data.spec)[0].default_image_size)
    common = dict(
        data_root=data.data_root,
        download=data.download,
        image_size=spec.stored_size,
        interpolation=spec.interpolation,
        val_fraction=data.val_fraction,
        split_seed=data.split_seed,
    )
    train_set = get_dataset(data.spec, "train", train_per_class=data.train_per_class, **common)
    eval_set = get_dataset(data.spec, data.eval_split, **common)
    test_set = get_dataset(data.spec, "test", **common)
    processes = runtime.processes
    if len(train_set) < 2 * processes.world:
        raise ConfigError(
            f"{data.spec} has {len(train_set)} training image(s); need at least "
            f"{2 * processes.world} (two per process)"
        )
    if config.train.batch_size % processes.world:
        raise ConfigError(
            f"--batch-size {config.train.batch_size} is the global batch and must divide "
            f"evenly among the {processes.world} processes"
        )

    torch.manual_seed(config.train.stream_seed("init"))
    model = create_model(
        config.model.name, train_set.num_classes, spec.size, pretrained=config.model.pretrained
    )
    check_input_size(model, config.model.name, spec.size)
    policy = config.policy
    random_state = (
        {k: v.clone() for k, v in model.state_dict().items()}
        if policy.transfer_groups is not None
        else None
    )
    init_report = load_init(model, config.model.init) if config.model.init else None
    if config.model.pretrained:
        init_report = InitReport(source=f"timm pretrained {config.model.name}")
    groups = layer_groups(model)
    has_init = bool(config.model.init or config.model.pretrained)
    plans = plan_parameters(
        model, groups, config.reg, policy, has_init=has_init, head=set(classifier_keys(model))
    )
    if random_state is not None:
        reinitialise(model, random_state, groups, policy.transfer_groups)
    if config.train.sync_bn and processes.parallel:
        if runtime.device.type != "cuda":
            raise ConfigError(
                "--sync-bn needs CUDA devices: PyTorch's SyncBatchNorm has no CPU kernel"
            )
        model = convert_sync_batchnorm(model)
    frozen_norms = freeze(model, plans, groups, policy.freeze_bn_stats)
    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model = model.to(runtime.device, memory_format=memory_format)
    init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    optimizer = build_optimizer(config.optim, parameter_groups(model, plans), fused=runtime.fused)

    # One shuffle object for the training and the evaluation preps: the same permutation.
    shuffle = (
        BlockShuffle(
            spec.size,
            data.block_shuffle,
            scheme=data.shuffle_scheme,
            seed=data.shuffle_seed,
            device=runtime.device,
        )
        if data.block_shuffle is not None
        else None
    )
    prep = dict(
        mean=spec.mean,
        std=spec.std,
        device=runtime.device,
        channels_last=runtime.channels_last,
        shuffle=shuffle,
        size=spec.size,
        aug=spec.aug,
    )
    eval_prep = BatchPrep(**prep, augment=False, flip=False)
    bs = config.train.batch_size
    fisher = (
        _fisher(config, model, train_set, eval_prep, runtime, plans, spec)
        if for_training and config.reg.sp == "l2sp_fisher" and any(p.alpha for p in plans)
        else {}
    )
    buckets = build_buckets(model, plans, init_state, fisher, config.reg.sp)
    features = None
    if for_training and (config.reg.delta > 0 or config.reg.bss > 0):
        attention = None
        if config.reg.delta_attention and config.reg.delta > 0:
            loader = Batches(train_set, runtime.device, on_device=False)
            order = epoch_order(len(train_set), config.train.stream_seed("order"), -1)
            attention = ((eval_prep(x), y) for x, y in loader.iterate(order, bs))
        features = FeatureTerms(
            model,
            delta=config.reg.delta,
            bss=config.reg.bss,
            bss_k=config.reg.bss_k,
            attention_batches=attention,
            attention_n_batches=config.reg.fisher_batches,
        )
    # Compiled after the feature hooks are in place, so the compiled graph runs them.
    # Evaluation bypasses DDP: each process evaluates its own share, however many batches.
    eval_forward = torch.compile(model) if runtime.compile else model
    forward = eval_forward
    if processes.parallel:
        ddp = DistributedDataParallel(
            model, device_ids=[runtime.device] if runtime.device.type == "cuda" else None
        )
        forward = torch.compile(ddp) if runtime.compile else ddp
    # A last batch with fewer than two examples per process would break BatchNorm: dropped.
    rest = len(train_set) % bs
    usable = len(train_set) - (rest if 0 < rest < 2 * processes.world else 0)

    def batches(dataset: ImageSet) -> Batches:
        on_device = fits_on_device(dataset, data.device_data)
        return Batches(dataset, runtime.device, on_device=on_device, workers=data.workers)

    def fixed(dataset: ImageSet) -> FixedBatches:
        order = torch.arange(len(dataset))
        return fixed_batches(batches(dataset), order, config.train.eval_batch_size, processes)

    return _Setup(
        config=config,
        runtime=runtime,
        model=model,
        forward=forward,
        eval_forward=eval_forward,
        groups=groups,
        optimizer=optimizer,
        train_set=train_set,
        train_batches=batches(train_set),
        eval_batches=fixed(eval_set),
        test_batches=fixed(test_set),
        train_prep=BatchPrep(**prep, augment=data.augment, flip=data.hflip),
        eval_prep=eval_prep,
        init_state=init_state,
        plans=plans,
        frozen_norms=frozen_norms,
        buckets=buckets,
        fisher=fisher,
        features=features,
        init_report=init_report,
        steps_per_epoch=math.ceil(usable / bs),
        usable=usable,
        input=spec,
    )


def _run(
    s: _Setup,
    out: Path,
    history: History,
    step: int,
    progress: Progress | None,
    command: str,
) -> RunResult:
    """Train from global ``step`` to the end, then write the final weights and summary."""
    cfg = s.config
    processes = s.runtime.processes
    emit = progress if progress is not None and processes.main else (lambda event: None)
    total_steps = cfg.train.epochs * s.steps_per_epoch
    order_seed = cfg.train.stream_seed("order")
    aug_seed = cfg.train.stream_seed("aug")
    generator = torch.Generator(device=s.runtime.device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.optim.label_smoothing)
    group_names = [g.name for g in s.groups]
    bs = cfg.train.batch_size
    local_bs = bs // processes.world
    eps = cfg.reg.sp_smoothing
    history.penalty_names = penalty_names(s.buckets)

    def checkpoint(at_step: int) -> None:
        if processes.main:
            _save_checkpoint(out, s, at_step, history)
            _write_run_h5(out, s, history, command, {})

    try:
        while step < total_steps:
            epoch, first = divmod(step, s.steps_per_epoch)
            order = epoch_order(len(s.train_set), order_seed, epoch)[: s.usable]
            meter = _EpochMeter(s, epoch, first, history.partial_epoch if first else {})
            _train_mode(s)
            mine = process_share(order, bs, processes)
            batches = s.train_batches.iterate(mine[first * local_bs :], local_bs)
            for i, (images, labels) in enumerate(batches, start=first):
                generator.manual_seed(mix_seed(aug_seed, step))
                torch.manual_seed(mix_seed(aug_seed, step, 1))
                lr = lr_at(cfg.optim, step, s.steps_per_epoch, total_steps)
                set_lr(s.optimizer, lr)
                # This process's rows of the global batch: the same augmentation draws as
                # one process preparing the whole batch.
                global_n = min(bs, s.usable - i * bs)
                offset, _ = share(global_n, processes.world, processes.rank)
                x = s.train_prep(images, generator, part=(offset, global_n))
                with s.runtime.autocast():
                    logits = s.forward(x)
                    extra = s.features.loss(x) if s.features is not None else 0.0
                # Weighted by this process's share, so that DDP's average over processes is
                # the mean over the global batch (1 on one process).
                weight = len(labels) * processes.world / global_n
                loss = loss_fn(logits.float(), labels) * weight + extra
                s.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.reg.reg_mode == "coupled":
                    add_to_gradients(s.buckets, eps)
                else:
                    shrink_weights(s.buckets, lr, eps)
                s.optimizer.step()
                meter.record(i, loss / processes.world, logits, labels, global_n)
                history.step_lr.append(lr)
                step += 1
                last_of_epoch = i == s.steps_per_epoch - 1
                if step % cfg.train.log_every == 0 or last_of_epoch:
                    chunk = meter.flush(i + 1, history)
                    emit(
                        {
                            "event": "step",
                            "epoch": epoch + 1,
                            "epochs": cfg.train.epochs,
                            "step": step,
                            "steps": total_steps,
                            "loss": chunk[-1] if chunk else None,
                            "acc": meter.accuracy(),
                            "lr": lr,
                            "images_per_s": meter.seen / meter.elapsed(),
                        }
                    )
                every = cfg.train.checkpoint_every
                if every and step % every == 0 and not last_of_epoch:
                    meter.flush(i + 1, history)
                    history.partial_epoch = meter.partial()
                    checkpoint(step)
            history.partial_epoch = {}
            seconds = meter.elapsed()
            eval_loss, eval_acc = evaluate(
                s.model, s.eval_batches, s.eval_prep, s.runtime, forward=s.eval_forward
            )
            distance, relative = group_distances(s.model, s.init_state, s.groups)
            history.group_distance.append(distance)
            history.group_relative_distance.append(relative)
            history.penalties.append(
                penalty_per_group(s.buckets, len(s.groups), eps, history.penalty_names)
            )
            history.epochs.append(
                {
                    "train_loss": float(np.mean(history.step_loss[-s.steps_per_epoch :])),
                    "train_acc": meter.accuracy(),
                    "eval_loss": eval_loss,
                    "eval_acc": eval_acc,
                    "seconds": seconds,
                    "images_per_s": meter.seen / seconds,
                    "lr": lr,
                }
            )
            emit(
                {
                    "event": "epoch",
                    "epoch": epoch + 1,
                    "epochs": cfg.train.epochs,
                    **history.epochs[-1],
                }
            )
            checkpoint(step)
    except Diverged as err:
        reason = str(err)
        if processes.main:
            _write_run_h5(out, s, history, command, {"status": "failed"})
            rundir.write_status(out, "failed", reason)
        processes.wait()
        return RunResult(out, "failed", reason, {}, s.init_report, group_names)

    test_loss, test_acc = evaluate(
        s.model, s.test_batches, s.eval_prep, s.runtime, forward=s.eval_forward
    )
    last = history.epochs[-1]
    summary = {
        "status": "completed",
        "epochs": len(history.epochs),
        "steps": step,
        "final_train_loss": last["train_loss"],
        "final_eval_loss": last["eval_loss"],
        "final_eval_acc": last["eval_acc"],
        "best_eval_acc": max(e["eval_acc"] for e in history.epochs),
        "test_loss": test_loss,
        "test_acc": test_acc,
        "train_seconds": sum(e["seconds"] for e in history.epochs),
    }
    if processes.main:
        rundir.save_weights(out / rundir.FINAL, s.model.state_dict())
        _write_run_h5(out, s, history, command, summary)
        rundir.write_status(out, "completed")
    # No process returns before the run directory is complete.
    processes.wait()
    emit({"event": "done", **summary})
    return RunResult(out, "completed", "", summary, s.init_report, group_names)


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


def _train_mode(s: _Setup) -> None:
    """Training mode, except the norm layers of frozen groups, whose statistics stay put."""
    s.model.train()
    for module in s.frozen_norms:
        module.eval()


def _fisher(
    config: RunConfig,
    model: nn.Module,
    target: ImageSet,
    prep: BatchPrep,
    runtime: Runtime,
    plans: list[ParamPlan],
    input_spec: InputSpec,
) -> dict[str, torch.Tensor]:
    """Diagonal Fisher information at w0 of the transferred parameters under an SP
    penalty, from ``fisher_batches`` batches of the source task when known (the --init
    run's dataset, with the source model's own head), else of the target; another dataset
    is decoded and prepared as the target is (``input_spec``)."""
    reg, data = config.reg, config.data
    spec = reg.fisher_data or _init_run_data(config.model.init) or data.spec
    dataset = (
        target
        if spec == data.spec
        else get_dataset(
            spec,
            "train",
            data_root=data.data_root,
            download=data.download,
            image_size=input_spec.stored_size,
            interpolation=input_spec.interpolation,
            split_seed=data.split_seed,
        )
    )
    scorer = model
    if dataset is not target:
        torch.manual_seed(config.train.stream_seed("init"))
        scorer = create_model(config.model.name, dataset.num_classes, input_spec.size)
        state = read_weights(config.model.init) if config.model.init else model.state_dict()
        own = scorer.state_dict()
        fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        scorer.load_state_dict(fits, strict=False)
        scorer = scorer.to(runtime.device)
    if dataset is not target:
        prep = prep.unshuffled()
    names = [p.name for p in plans if p.alpha > 0]
    batches = Batches(dataset, runtime.device, on_device=fits_on_device(dataset, data.device_data))
    # A seeded shuffle, so the first batches cover the classes of a class-sorted dataset.
    order = epoch_order(len(dataset), config.train.stream_seed("order"), -1)
    prepared = ((prep(x), y) for x, y in batches.iterate(order, config.train.batch_size))
    return estimate_fisher(scorer, prepared, names, n_batches=reg.fisher_batches)


def _init_run_data(init: str | None) -> str | None:
    """The dataset spec an --init run directory was trained on, if it is one."""
    if init is None or not (Path(init) / rundir.CONFIG).exists():
        return None
    return rundir.read_config(Path(init))["config"]["data"]["spec"]


class _EpochMeter:
    """One epoch's losses and correct predictions, kept on the device and read back to the
    host only when logged; restarts mid-epoch from a checkpoint's partial counts. Under DDP
    each process keeps its own share, summed over the processes when logged."""

    def __init__(self, s: _Setup, epoch: int, first: int, partial: dict[str, float]) -> None:
        device = s.runtime.device
        self.processes = s.runtime.processes
        self.losses = torch.zeros(s.steps_per_epoch, device=device)
        # A resumed epoch's count so far enters the sum once, through the main process.
        start = int(partial.get("correct", 0)) if self.processes.main else 0
        self.correct = torch.full((), start, device=device)
        self.total_correct = int(partial.get("correct", 0))
        self.seen = int(partial.get("seen", 0))
        self.logged = first
        self.first_step = epoch * s.steps_per_epoch
        self.start = time.perf_counter() - partial.get("seconds", 0.0)

    def record(
        self,
        i: int,
        loss: torch.Tensor,
        logits: torch.Tensor,
        labels: torch.Tensor,
        global_n: int,
    ) -> None:
        """Step ``i``'s share of the global batch's mean loss, this process's correct
        predictions, and the ``global_n`` examples the step saw over all processes."""
        self.losses[i] = loss.detach()
        self.correct += (logits.argmax(1) == labels).sum()
        self.seen += global_n

    def flush(self, upto: int, history: History) -> list[float]:
        """Append the losses of this epoch's steps [logged, upto) to the history; a NaN or
        infinite one raises Diverged naming its step (on every process alike)."""
        self.total_correct = int(self.processes.sum_(self.correct.clone()))
        chunk = self.processes.sum_(self.losses[self.logged : upto].clone()).tolist()
        bad = [k for k, v in enumerate(chunk) if not math.isfinite(v)]
        if bad:
            raise Diverged(f"non-finite loss at step {self.first_step + self.logged + bad[0] + 1}")
        history.step_loss.extend(chunk)
        self.logged = upto
        return chunk

    def accuracy(self) -> float:
        """Training accuracy up to the last flush."""
        return self.total_correct / max(self.seen, 1)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def partial(self) -> dict[str, float]:
        return {"correct": self.total_correct, "seen": self.seen, "seconds": self.elapsed()}


@torch.no_grad()
def group_distances(
    model: nn.Module, init_state: dict[str, torch.Tensor], groups: list[LayerGroup]
) -> tuple[list[float], list[float]]:
    """Per layer group: ||w - w0|| and ||w - w0|| / ||w0|| over its parameters, with fused
    foreach kernels."""
    params = dict(model.named_parameters())
    distance, relative = [], []
    for group in groups:
        current = [params[n].detach() for n in group.params]
        start = [init_state[n] for n in group.params]
        diff = torch._foreach_sub(current, start)
        d = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(diff)).double())
        w0 = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(start)).double())
        distance.append(float(d))
        relative.append(float(d / w0) if w0 > 0 else float("nan"))
    return distance, relative


def _save_checkpoint(out: Path, s: _Setup, step: int, history: History) -> None:
    """Optimizer state and position first, weights last; the previous state is kept until
    the weights are in place, so a kill at any moment leaves a matching pair on disk."""
    folder = out / rundir.CHECKPOINTS
    folder.mkdir(exist_ok=True)
    state_path = folder / rundir.STATE
    if state_path.exists():
        state_path.replace(folder / f"prev.{rundir.STATE}")
    rundir.save_torch(
        state_path,
        {"step": step, "optimizer": s.optimizer.state_dict(), "history": history.state()},
    )
    rundir.save_weights(folder / rundir.LAST, s.model.state_dict(), metadata={"step": str(step)})


def _load_checkpoint(run: Path) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any]]:
    """The last checkpoint's weights and the saved state of the same step (None, {} when the
    run was killed before its first checkpoint)."""
    folder = run / rundir.CHECKPOINTS
    weights_path = folder / rundir.LAST
    if not weights_path.exists():
        return None, {}
    with safe_open(str(weights_path), framework="pt") as f:
        step = int((f.metadata() or {}).get("step", -1))
    for name in (rundir.STATE, f"prev.{rundir.STATE}"):
        path = folder / name
        if path.exists():
            saved = rundir.load_torch(path)
            if int(saved["step"]) == step:
                return rundir.load_weights(weights_path), saved
    raise RunDirError(f"{folder} holds no optimizer state for the weights of step {step}")


def _write_run_h5(
    out: Path, s: _Setup, history: History, command: str, summary: dict[str, Any]
) -> None:
    history.write(
        out / rundir.RUN_H5,
        group_names=[g.name for g in s.groups],
        attrs={
            "config": s.config.to_dict(),
            "config_hash": s.config.hash(),
            "model": s.config.model.name,
            "data": s.config.data.spec,
            "steps_per_epoch": s.steps_per_epoch,
        },
        summary=summary,
        command=command,
    )


def _config_record(s: _Setup, command: str) -> dict[str, Any]:
    """config.json: the whole resolved configuration and what is needed to reproduce it."""
    train = s.config.train
    return {
        "kind": s.config.kind,
        "config": s.config.to_dict(),
        "config_hash": s.config.hash(),
        "seeds": {stream: train.stream_seed(stream) for stream in ("init", "order", "aug")},
        "command": command,
        "versions": {
            "landscape": __version__,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "timm": timm.__version__,
            "numpy": np.__version__,
        },
        "git_commit": _git_commit(),
        "runtime": s.runtime.describe(),
        "data": {
            "classes": s.train_set.classes,
            "num_classes": s.train_set.num_classes,
            "image_size": s.train_set.image_size,
            "input": s.input.to_dict(),
            "train_examples": len(s.train_set),
            "eval_examples": s.eval_batches.examples,
            "test_examples": s.test_batches.examples,
        },
        "groups": [{"name": g.name, "params": list(g.params)} for g in s.groups],
        "init": {
            "source": s.init_report.source if s.init_report else "random",
            "new_head": s.init_report.replaced_head if s.init_report else [],
            "ignored_checkpoint_keys": s.init_report.unexpected if s.init_report else [],
        },
    }


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
