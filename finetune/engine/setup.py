"""Everything a run needs, built from a RunConfig and checked before anything is written:
the data and its batches, the model with its layer-wise policy applied, the optimizer and
regularisers, and the forward functions (compiled, wrapped in DDP across processes). The
order of the steps is the order the init and order seed streams are drawn in."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from timm.layers import convert_sync_batchnorm
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from finetune.config import RunConfig
from finetune.data import ImageSet, dataset_options, get_dataset, resolve_spec
from finetune.data.augment import BatchPrep
from finetune.data.block_shuffle import BlockShuffle
from finetune.data.input_spec import InputSpec, resolve_input
from finetune.data.loader import Batches, epoch_order, fits_on_device
from finetune.distributed import Processes
from finetune.engine.stages import Stage, build_stages, describe_stages
from finetune.errors import ConfigError
from finetune.evaluation.batches import FixedBatches, fixed_batches
from finetune.groups import LayerGroup, layer_groups
from finetune.models import InitReport, check_input_size, classifier_keys, create_model, load_init
from finetune.optim import build_optimizer, parameter_groups
from finetune.policy import (
    ParamPlan,
    format_table,
    freeze,
    group_table,
    plan_parameters,
    reinitialise,
)
from finetune.regularisers.feature_terms import FeatureTerms
from finetune.regularisers.fisher_source import run_fisher
from finetune.regularisers.penalties import Bucket, needs_fisher
from finetune.runtime import Runtime, resolve_runtime

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Setup:
    """Everything the training loop reads, built once per ``train`` or ``resume``."""

    config: RunConfig
    runtime: Runtime
    model: nn.Module
    forward: Forward  # training, through DDP across processes
    local_forward: Forward  # training, the model alone (no DDP): Auto-RGN's gradients
    eval_forward: Forward
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
    stages: list[Stage]
    buckets: list[Bucket]  # every penalty of the fine-tuning stage, as logged
    fisher: dict[str, torch.Tensor]
    features: FeatureTerms | None
    init_report: InitReport | None
    steps_per_epoch: int
    usable: int
    input: InputSpec


@dataclass
class _Data:
    input: InputSpec
    train_set: ImageSet
    eval_set: ImageSet
    test_set: ImageSet


@dataclass
class _Model:
    model: nn.Module
    groups: list[LayerGroup]
    plans: list[ParamPlan]
    frozen_norms: list[nn.Module]
    init_report: InitReport | None
    init_state: dict[str, torch.Tensor]


def build_setup(config: RunConfig, *, for_training: bool = True) -> Setup:
    """Everything a run needs, checked before anything is written. ``for_training=False``
    skips the data passes (Fisher, DELTA's attention) that only training needs."""
    runtime = resolve_runtime(config.train)
    data = _datasets(config, runtime.processes)
    net = _model_and_policy(config, runtime, data)
    per_tensor = config.policy.auto_lr == "rgn"
    optimizer = build_optimizer(
        config.optim,
        parameter_groups(net.model, net.plans, per_tensor=per_tensor),
        fused=runtime.fused,
    )
    train_prep, eval_prep = _preps(config, runtime, data.input)
    wants_fisher = needs_fisher(config.reg.sp) and any(p.alpha for p in net.plans)
    fisher = (
        run_fisher(config, net.model, data.train_set, eval_prep, runtime, net.plans, data.input)
        if for_training and wants_fisher
        else {}
    )
    stages = build_stages(
        config,
        net.model,
        net.plans,
        net.frozen_norms,
        head=set(classifier_keys(net.model)),
        w0=net.init_state,
        fisher=fisher,
    )
    wants_features = config.reg.delta > 0 or config.reg.bss > 0
    features = (
        _feature_terms(config, runtime, net.model, data.train_set, eval_prep)
        if for_training and wants_features
        else None
    )
    forward, local_forward, eval_forward = _forwards(net.model, runtime, stages=len(stages))
    usable = _usable_examples(len(data.train_set), config.train.batch_size, runtime.processes)
    return Setup(
        config=config,
        runtime=runtime,
        model=net.model,
        forward=forward,
        local_forward=local_forward,
        eval_forward=eval_forward,
        groups=net.groups,
        optimizer=optimizer,
        train_set=data.train_set,
        train_batches=_batches(data.train_set, config, runtime),
        eval_batches=_fixed_batches(data.eval_set, config, runtime),
        test_batches=_fixed_batches(data.test_set, config, runtime),
        train_prep=train_prep,
        eval_prep=eval_prep,
        init_state=net.init_state,
        plans=net.plans,
        stages=stages,
        buckets=stages[-1].buckets,
        fisher=fisher,
        features=features,
        init_report=net.init_report,
        steps_per_epoch=math.ceil(usable / config.train.batch_size),
        usable=usable,
        input=data.input,
    )


def describe_plan(config: RunConfig) -> str:
    """The resolved per-group policy of ``config`` as a table, without training."""
    setup = build_setup(config, for_training=False)
    rows = group_table(setup.model, setup.groups, setup.plans)
    notes = describe_stages(config, classifier_keys(setup.model))
    return "\n".join([format_table(rows, config.optim.lr), *notes])


def _datasets(config: RunConfig, processes: Processes) -> _Data:
    """The input spec and the train, evaluation and test splits, checked to be big enough
    to share among the processes."""
    data = config.data
    # Images are decoded at the stored size, so evaluation can centre-crop the input size.
    spec = resolve_input(config.model, data, resolve_spec(data.spec)[0].default_image_size)
    common = dict(
        image_size=spec.stored_size, interpolation=spec.interpolation, **dataset_options(data)
    )
    train_set = get_dataset(data.spec, "train", **common)
    eval_set = get_dataset(data.spec, data.eval_split, **common)
    test_set = get_dataset(data.spec, "test", **common)
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
    return _Data(spec, train_set, eval_set, test_set)


def _model_and_policy(config: RunConfig, runtime: Runtime, data: _Data) -> _Model:
    """The model from the init seed stream, its initial weights loaded, its groups planned,
    re-initialised and frozen as the policy says, on the device; w0 is its state then."""
    name, spec, policy = config.model.name, data.input, config.policy
    torch.manual_seed(config.train.stream_seed("init"))
    model = create_model(
        name,
        data.train_set.num_classes,
        spec.size,
        pretrained=config.model.pretrained,
        drop_rate=config.model.drop_rate,
    )
    check_input_size(model, name, spec.size)
    random_state = (
        {k: v.clone() for k, v in model.state_dict().items()}
        if policy.transfer_groups is not None
        else None
    )
    init_report = load_init(model, config.model.init) if config.model.init else None
    if config.model.pretrained:
        init_report = InitReport(source=f"timm pretrained {name}")
    groups = layer_groups(model)
    has_init = bool(config.model.init or config.model.pretrained)
    plans = plan_parameters(
        model, groups, config.reg, policy, has_init=has_init, head=set(classifier_keys(model))
    )
    if random_state is not None:
        reinitialise(model, random_state, groups, policy.transfer_groups)
    if config.train.sync_bn and runtime.processes.parallel:
        if runtime.device.type != "cuda":
            raise ConfigError(
                "--sync-bn needs CUDA devices: PyTorch's SyncBatchNorm has no CPU kernel"
            )
        model = convert_sync_batchnorm(model)
    frozen_norms = freeze(model, plans, groups, policy.freeze_bn_stats)
    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model = model.to(runtime.device, memory_format=memory_format)
    init_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return _Model(model, groups, plans, frozen_norms, init_report, init_state)


def _preps(config: RunConfig, runtime: Runtime, spec: InputSpec) -> tuple[BatchPrep, BatchPrep]:
    """The training and evaluation batch preparations. They share one block-shuffle
    object, so both apply the same permutation."""
    data = config.data
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
    train_prep = BatchPrep(**prep, augment=data.augment, flip=data.hflip)
    return train_prep, BatchPrep(**prep, augment=False, flip=False)


def _feature_terms(
    config: RunConfig,
    runtime: Runtime,
    model: nn.Module,
    train_set: ImageSet,
    eval_prep: BatchPrep,
) -> FeatureTerms:
    """DELTA and BSS on ``model``'s features; DELTA's channel attention, when asked for,
    is measured on training batches shuffled by the order seed stream (epoch -1)."""
    reg = config.reg
    attention = None
    if reg.delta_attention and reg.delta > 0:
        loader = Batches(train_set, runtime.device, on_device=False)
        order = epoch_order(len(train_set), config.train.stream_seed("order"), -1)
        batches = loader.iterate(order, config.train.batch_size)
        attention = ((eval_prep(x), y) for x, y in batches)
    return FeatureTerms(
        model,
        delta=reg.delta,
        bss=reg.bss,
        bss_k=reg.bss_k,
        attention_batches=attention,
        attention_n_batches=reg.fisher_batches,
    )


def _forwards(
    model: nn.Module, runtime: Runtime, *, stages: int
) -> tuple[Forward, Forward, Forward]:
    """The training forward (through DDP across processes), the model's own training
    forward (Auto-RGN's gradients, which each process measures on its share alone) and the
    evaluation forward, compiled when asked. Built after the feature hooks are in place, so
    the compiled graph runs them. Evaluation bypasses DDP: each process evaluates its own
    share, however many batches that is. Across several ``stages`` (LP-FT) DDP is built for
    the last stage's tensors and told that some of them may get no gradient (those frozen
    in the probe)."""
    if not runtime.compile:
        train = _ddp(model, runtime, stages) if runtime.processes.parallel else model
        return train, model, model
    compiled = torch.compile(model)
    local = _static_batch(compiled)
    if not runtime.processes.parallel:
        return local, local, compiled
    return _static_batch(torch.compile(_ddp(model, runtime, stages))), local, compiled


def _ddp(model: nn.Module, runtime: Runtime, stages: int) -> DistributedDataParallel:
    """``model`` in DDP on this process's device (``_forwards`` says why ``stages``)."""
    return DistributedDataParallel(
        model,
        device_ids=[runtime.device] if runtime.device.type == "cuda" else None,
        find_unused_parameters=stages > 1,
    )


def _static_batch(forward: Forward) -> Forward:
    """The compiled training ``forward`` with the batch dimension of every input marked
    static. An epoch's smaller last batch then gets a static graph of its own; unmarked,
    dynamo would recompile for that second size with the dimension dynamic and run every
    later full batch on the dynamic-shape graph, where a plain loop keeps its static one."""

    def static(x: torch.Tensor) -> torch.Tensor:
        torch._dynamo.mark_static(x, 0)
        return forward(x)

    return static


def _usable_examples(n: int, batch_size: int, processes: Processes) -> int:
    """The training examples an epoch uses: a last batch with fewer than two examples per
    process would break BatchNorm, so it is dropped."""
    rest = n % batch_size
    return n - (rest if 0 < rest < 2 * processes.world else 0)


def _batches(dataset: ImageSet, config: RunConfig, runtime: Runtime) -> Batches:
    """Batches of ``dataset``, held on the device when it fits (--device-data)."""
    on_device = fits_on_device(dataset, config.data.device_data)
    return Batches(dataset, runtime.device, on_device=on_device, workers=config.data.workers)


def _fixed_batches(dataset: ImageSet, config: RunConfig, runtime: Runtime) -> FixedBatches:
    """The whole of ``dataset`` in order, as evaluation batches shared among the processes."""
    order = torch.arange(len(dataset))
    batches = _batches(dataset, config, runtime)
    return fixed_batches(batches, order, config.train.eval_batch_size, runtime.processes)
