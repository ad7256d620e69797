"""Where a run's L2-SP-Fisher weights come from: the source task when it is known (the
dataset an --init run directory was trained on, scored by the source model with its own
head), else the target task. ``estimate_fisher`` does the arithmetic; this module rebuilds
the data and the model it is given."""

from __future__ import annotations

import torch
from torch import nn

from finetune import rundir
from finetune.config import RunConfig
from finetune.data import ImageSet, get_dataset
from finetune.data.augment import BatchPrep
from finetune.data.input_spec import InputSpec
from finetune.data.loader import Batches, epoch_order, fits_on_device
from finetune.models import create_model, read_weights
from finetune.policy import ParamPlan
from finetune.regularisers.fisher import estimate_fisher
from finetune.runtime import Runtime


def run_fisher(
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
    dataset = _fisher_dataset(config, target, input_spec)
    scorer = model
    if dataset is not target:
        scorer = _source_model(config, model, dataset.num_classes, input_spec, runtime.device)
        prep = prep.unshuffled()
    names = [p.name for p in plans if p.alpha > 0]
    on_device = fits_on_device(dataset, config.data.device_data)
    batches = Batches(dataset, runtime.device, on_device=on_device)
    # A seeded shuffle, so the first batches cover the classes of a class-sorted dataset.
    order = epoch_order(len(dataset), config.train.stream_seed("order"), -1)
    prepared = ((prep(x), y) for x, y in batches.iterate(order, config.train.batch_size))
    return estimate_fisher(scorer, prepared, names, n_batches=config.reg.fisher_batches)


def init_run_data(init: str | None) -> str | None:
    """The dataset spec an --init run (a run directory or RUN:epochK) was trained on, if
    it is one."""
    named = rundir.run_reference(init) if init else None
    if named is None or not (named[0] / rundir.CONFIG).exists():
        return None
    return rundir.read_config(named[0])["config"]["data"]["spec"]


def _fisher_dataset(config: RunConfig, target: ImageSet, input_spec: InputSpec) -> ImageSet:
    """The training split of --fisher-data, else of the --init run's dataset, else the
    target itself; another dataset is decoded at the target's stored size."""
    data = config.data
    spec = config.reg.fisher_data or init_run_data(config.model.init) or data.spec
    if spec == data.spec:
        return target
    return get_dataset(
        spec,
        "train",
        data_root=data.data_root,
        download=data.download,
        image_size=input_spec.stored_size,
        interpolation=input_spec.interpolation,
        split_seed=data.split_seed,
        flag="--fisher-data" if config.reg.fisher_data else "--init",
    )


def _source_model(
    config: RunConfig,
    model: nn.Module,
    num_classes: int,
    input_spec: InputSpec,
    device: torch.device,
) -> nn.Module:
    """The architecture with a ``num_classes`` head, holding the --init weights (else the
    run's own initial weights) wherever their shapes fit; the rest is drawn from the run's
    init seed stream."""
    torch.manual_seed(config.train.stream_seed("init"))
    scorer = create_model(config.model.name, num_classes, input_spec.size)
    state = read_weights(config.model.init) if config.model.init else model.state_dict()
    own = scorer.state_dict()
    fits = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    scorer.load_state_dict(fits, strict=False)
    return scorer.to(device)
