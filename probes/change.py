"""What fine-tuning changed in each layer group of a run, against the run's initial
weights, measured on the same examples:

- **feature reuse**: linear CKA between the initial and the final model's representation
  at the group's output (what it hands to the next group; the logits for the head),
  minibatch CKA (``probes.cka``);
- **movement**: ``||theta_g - theta_g^0|| / ||theta_g^0||`` over the group's parameters;
- **rewind cost**: the error and loss of the final model with only that group reset to its
  initial weights (its parameters and its BatchNorm statistics), minus the final model's,
  BatchNorm re-estimated in both (module criticality's rewind at a = 0, Chatterji et al.
  2019).

Errors come from the examples: the CKA and the rewind costs are statistics of additive
per-batch sums, so each gets a delete-one-batch jackknife standard error
(``probes.statistics.jackknife``); the rewind costs are paired (the same batches with and
without the rewind). The movement is exact for a run."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from finetune.data.augment import BatchPrep
from finetune.errors import ConfigError
from finetune.evaluation.batches import FixedBatches
from finetune.evaluation.measure import measure
from finetune.groups import LayerGroup, layer_groups
from finetune.runs import LoadedRun, load_run
from finetune.runtime import Runtime
from probes.activations import group_layers
from probes.cka import cka_of_terms
from probes.distance import parameter_distance
from probes.inputs import bn_batches, eval_prep, probe_data
from probes.options import CHANGE_EXAMPLES, JACKKNIFE_BATCHES, ProbeOptions
from probes.similarity import accumulate_cka
from probes.statistics import jackknife


def jackknife_batch_size(examples: int) -> int:
    """The batch size that cuts ``examples`` into JACKKNIFE_BATCHES batches (at least 4
    examples each, as minibatch CKA needs): the groups of the jackknife over batches."""
    return max(4, -(-examples // JACKKNIFE_BATCHES))


@dataclass
class GroupChange:
    """Per layer group (row ``g`` of every array is ``groups[g]``) of the run ``label``
    against its initial weights ``init_label``: CKA and rewind costs with their jackknife
    errors, movement, and which groups started from a fresh random draw (``new``: the head,
    re-initialised groups) rather than transferred weights. Rewind costs are fractions of
    the ``examples`` (error) and nats per example (loss)."""

    label: str
    init_label: str
    groups: list[str]
    new: list[bool]
    cka: np.ndarray
    cka_se: np.ndarray
    movement: np.ndarray
    distance: np.ndarray
    rewind_error: np.ndarray
    rewind_error_se: np.ndarray
    rewind_loss: np.ndarray
    rewind_loss_se: np.ndarray
    final_error: float
    final_loss: float
    data: str
    split: str
    examples: int
    batches: int
    bn_batches: int
    seconds: float

    @property
    def frozen(self) -> list[bool]:
        """Groups whose parameters did not move at all."""
        return [bool(d == 0.0) for d in self.distance]


def group_tensors(model: nn.Module, group: LayerGroup) -> list[str]:
    """The state-dict names a rewind of ``group`` moves: its parameters and the floating
    buffers of the modules that hold them (a BatchNorm layer's running statistics)."""
    params = {name for name, _ in model.named_parameters()}
    owners = {name.rpartition(".")[0] for name in group.params}
    own = set(group.params)
    return [
        name
        for name, tensor in model.state_dict().items()
        if name in own
        or (name not in params and tensor.is_floating_point() and name.rpartition(".")[0] in owners)
    ]


def new_groups(run: LoadedRun, groups: list[LayerGroup]) -> list[bool]:
    """Which groups of a run that started from initial weights began as a random draw: the
    head, and the groups from ``--transfer-groups`` on."""
    keep = run.config.policy.transfer_groups
    last = len(groups) - 1
    return [g.index == last or (keep is not None and g.index >= keep) for g in groups]


def group_change(
    run: str | Path, *, options: ProbeOptions = ProbeOptions(examples=CHANGE_EXAMPLES)
) -> GroupChange:
    """CKA to init, movement and rewind cost of every layer group of ``run`` (a run
    directory, or a weights file of one, against the run's ``init.safetensors``), on the
    examples ``options`` names (default: CHANGE_EXAMPLES seeded test examples of the run's
    dataset, in JACKKNIFE_BATCHES batches, BatchNorm re-estimated on the options' training
    batches). A run that started from random init is refused: it transferred nothing."""
    runtime = options.runtime()
    if runtime.processes.parallel:
        raise ConfigError("the per-group change of a run is measured on one process")
    final = load_run(run, device=runtime.device)
    model_config = final.config.model
    if not (model_config.init or model_config.pretrained):
        raise ConfigError(
            f"{final.run} was trained from random init (no --init or --pretrained): "
            "nothing was transferred to explain"
        )
    init = load_run("init", base=run, device=runtime.device)
    for loaded in (final, init):
        if runtime.channels_last:
            loaded.model.to(memory_format=torch.channels_last)
    started = time.perf_counter()
    source = probe_data(final, runtime, options)
    batch_size = options.batch_size or jackknife_batch_size(len(source))
    data = source.fixed(batch_size, runtime.processes, minimum=4)
    prep = eval_prep(final, runtime)
    bn_data = bn_batches(final, runtime, options, batch_size)
    groups = layer_groups(final.model)

    layers = group_layers(final.model)
    pairs = ((x, x) for x in (prep(images) for images, _ in data))
    accumulator = accumulate_cka(
        init.model, final.model, pairs, layers, layers, runtime=runtime, keep_batches=True
    )
    n = len(layers)
    cka, cka_se = jackknife(
        accumulator.batch_terms(), lambda t: np.diagonal(cka_of_terms(t, n, n)).copy()
    )
    final_state = {k: v.detach().clone() for k, v in final.model.state_dict().items()}
    init_state = init.model.state_dict()
    moved = parameter_distance(final_state, init_state, groups)
    rewind = _rewind_costs(final.model, final_state, init_state, groups, data, prep, runtime,
                           bn_data)  # fmt: skip
    return GroupChange(
        label=final.label,
        init_label=init.label,
        groups=[g.name for g in groups],
        new=new_groups(final, groups),
        cka=cka,
        cka_se=cka_se,
        movement=moved.group["relative_distance"],
        distance=moved.group["distance"],
        **rewind,
        data=source.spec,
        split=options.split,
        examples=data.examples,
        batches=data.batches,
        bn_batches=bn_data.batches if bn_data is not None else 0,
        seconds=time.perf_counter() - started,
    )


@torch.no_grad()
def _rewind_costs(
    model: nn.Module,
    final_state: dict[str, torch.Tensor],
    init_state: dict[str, torch.Tensor],
    groups: Iterable[LayerGroup],
    data: FixedBatches,
    prep: BatchPrep,
    runtime: Runtime,
    bn_data: FixedBatches | None,
) -> dict[str, np.ndarray | float]:
    """Per group, the final model's error and loss with the group at its initial weights
    minus without, with their paired jackknife errors over the batches; the model is left
    at its final weights."""
    sizes = np.asarray(data.sizes, dtype=np.float64)[:, None]

    def per_batch() -> np.ndarray:
        return measure(model, data, prep, runtime, bn_data=bn_data, per_batch=True).cpu().numpy()

    base = per_batch()
    rises = {"error": [], "error_se": [], "loss": [], "loss_se": []}
    for group in groups:
        reset = {name: init_state[name] for name in group_tensors(model, group)}
        model.load_state_dict({**final_state, **reset})
        parts = np.concatenate([per_batch(), base, sizes], axis=1)

        def rise(total: np.ndarray) -> np.ndarray:
            loss_r, correct_r, loss_f, correct_f, n = total
            return np.array([(correct_f - correct_r) / n, (loss_r - loss_f) / n])

        value, se = jackknife(parts, rise)
        rises["error"].append(value[0])
        rises["error_se"].append(se[0])
        rises["loss"].append(value[1])
        rises["loss_se"].append(se[1])
    model.load_state_dict(final_state)
    n = float(sizes.sum())
    return {
        "rewind_error": np.array(rises["error"]),
        "rewind_error_se": np.array(rises["error_se"]),
        "rewind_loss": np.array(rises["loss"]),
        "rewind_loss_se": np.array(rises["loss_se"]),
        "final_error": float(1.0 - base[:, 1].sum() / n),
        "final_loss": float(base[:, 0].sum() / n),
    }
