"""One training step, read top to bottom: seed the step's random draws, set its learning
rate, prepare this process's rows of the global batch, forward, loss, backward, the SP and
L2 regularisers of the stage's trainable tensors, the optimizer's step, and the record of
its loss, accuracy and lr."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from finetune.data.loader import mix_seed
from finetune.distributed import share
from finetune.engine.history import History
from finetune.engine.meter import EpochMeter
from finetune.engine.setup import Setup
from finetune.engine.stages import Stage
from finetune.optim import set_lr, stage_lr
from finetune.regularisers.penalties import add_to_gradients, shrink_weights


@dataclass
class StepTools:
    """What every step of one ``train`` or ``resume`` call reuses."""

    total_steps: int
    aug_seed: int
    generator: torch.Generator
    loss_fn: nn.Module

    @classmethod
    def for_run(cls, s: Setup) -> StepTools:
        """The step count, augmentation seed stream, generator and loss of ``s``'s run."""
        return cls(
            total_steps=s.config.train.epochs * s.steps_per_epoch,
            aug_seed=s.config.train.stream_seed("aug"),
            generator=torch.Generator(device=s.runtime.device),
            loss_fn=nn.CrossEntropyLoss(label_smoothing=s.config.optim.label_smoothing),
        )


def train_step(
    s: Setup,
    tools: StepTools,
    stage: Stage,
    batch: tuple[torch.Tensor, torch.Tensor],
    i: int,
    step: int,
    meter: EpochMeter,
    history: History,
) -> float:
    """Global step ``step`` (the epoch's ``i``-th) of ``stage`` on this process's share of
    the global batch; returns the learning rate it used."""
    images, labels = batch
    bs, world = s.config.train.batch_size, s.runtime.processes.world
    tools.generator.manual_seed(mix_seed(tools.aug_seed, step))
    torch.manual_seed(mix_seed(tools.aug_seed, step, 1))
    lr = stage_lr(s.config.optim, s.config.policy, step, s.steps_per_epoch, tools.total_steps)
    set_lr(s.optimizer, lr)
    # This process's rows of the global batch: the same augmentation draws as one process
    # preparing the whole batch.
    global_n = min(bs, s.usable - i * bs)
    offset, _ = share(global_n, world, s.runtime.processes.rank)
    x = s.train_prep(images, tools.generator, part=(offset, global_n))
    with s.runtime.autocast():
        logits = s.forward(x)
        extra = s.features.loss(x) if s.features is not None else 0.0
    # Weighted by this process's share, so that DDP's average over processes is the mean
    # over the global batch (1 on one process).
    weight = len(labels) * world / global_n
    loss = tools.loss_fn(logits.float(), labels) * weight + extra
    s.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    _apply_penalties(s, stage, lr)
    s.optimizer.step()
    meter.record(i, loss / world, logits, labels, global_n)
    history.step_lr.append(lr)
    return lr


def _apply_penalties(s: Setup, stage: Stage, lr: float) -> None:
    """The SP and L2 penalties of the stage's trainable tensors: added to their gradients
    (--reg-mode coupled) or taken off the weights directly, scaled by ``lr`` (decoupled)."""
    eps = s.config.reg.sp_smoothing
    if s.config.reg.reg_mode == "coupled":
        add_to_gradients(stage.buckets, eps)
    else:
        shrink_weights(stage.buckets, lr, eps)
