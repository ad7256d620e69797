"""Auto-RGN (Lee et al. 2023, *Surgical fine-tuning improves adaptation to distribution
shifts*): at every epoch's start each trainable tensor's learning rate is scaled by its
relative gradient norm ||grad|| / ||w|| over the largest, so the tensors whose loss
gradient is large for their size train fastest.

As the official code (``get_lr_weights``), the ratio is that of the plain mean
cross-entropy, per batch, averaged over the epoch's first batches, with the model in
training mode. Unlike it, the measurement leaves the run as it was: the batches are not
augmented, the BatchNorm statistics are restored, dropout draws from a stream of its own
under a saved and restored global RNG, and the gradients never reach ``.grad``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F

from finetune.distributed import Processes, share
from finetune.engine.setup import Setup
from finetune.engine.stages import Stage
from finetune.groups import LayerGroup

Batch = tuple[torch.Tensor, torch.Tensor]

# The aug stream's draws are tagged: a step's generator (none), a step's global RNG (1),
# and the measurement of an epoch's RGN (this).
RGN_DRAWS = 2


def rgn_scales(
    s: Setup, stage: Stage, batches: Iterable[tuple[int, Batch]], seed: int
) -> dict[str, float]:
    """Each of ``stage``'s trainable tensors' relative gradient norm, averaged over
    ``batches`` (the epoch's ``(i, batch)`` pairs, this process's share of each global batch),
    divided by the largest: 1 for the largest. A tensor of norm 0 (a zero-initialised bias)
    has no ratio; it takes 1 and no part in the normalisation. Dropout draws from ``seed``."""
    params = dict(s.model.named_parameters())
    tensors = [params[name] for name in stage.trainable]
    buffers = list(s.model.buffers())
    saved = [b.clone() for b in buffers]
    weight_norms = torch.stack(torch._foreach_norm([t.detach() for t in tensors])).double()
    total = torch.zeros_like(weight_norms)
    count = 0
    devices = [s.runtime.device] if s.runtime.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for i, batch in batches:
            grads = _gradients(s, tensors, i, batch)
            total += torch.stack(torch._foreach_norm(grads)).double() / weight_norms
            count += 1
    for buffer, value in zip(buffers, saved):
        buffer.copy_(value)
    rgn = total / count  # inf or NaN where a weight norm is 0
    scales = (rgn / rgn.nan_to_num(nan=0.0, posinf=0.0).max()).nan_to_num(nan=1.0, posinf=1.0)
    return dict(zip(stage.trainable, scales.tolist()))


def _gradients(s: Setup, tensors: list[torch.Tensor], i: int, batch: Batch) -> list[torch.Tensor]:
    """The gradient of the mean cross-entropy of the epoch's ``i``-th global batch, of
    which ``batch`` is this process's share, with respect to ``tensors``."""
    images, labels = batch
    bs = s.config.train.batch_size
    global_n = min(bs, s.usable - i * bs)
    offset, _ = share(global_n, s.runtime.processes.world, s.runtime.processes.rank)
    x = s.eval_prep(images, part=(offset, global_n))
    with s.runtime.autocast():
        logits = s.local_forward(x)
    loss = F.cross_entropy(logits.float(), labels, reduction="sum") / global_n
    grads = torch.autograd.grad(loss, tensors, allow_unused=True, materialize_grads=True)
    return _summed(list(grads), s.runtime.processes)


def _summed(grads: list[torch.Tensor], processes: Processes) -> list[torch.Tensor]:
    """``grads`` summed over the processes (as flat views): each process's share of the
    global batch's mean loss adds up to its gradient."""
    if not processes.parallel:
        return grads
    flat = processes.sum_(torch.cat([g.reshape(-1) for g in grads]))
    return list(flat.split([g.numel() for g in grads]))


def group_means(scales: dict[str, float], groups: list[LayerGroup]) -> list[float]:
    """The mean scale of each layer group's measured tensors (NaN for a group with none)."""
    means = []
    for g in groups:
        mine = [scales[name] for name in g.params if name in scales]
        means.append(sum(mine) / len(mine) if mine else math.nan)
    return means
