"""The data a probe feeds to a model: a split of a dataset (a run's own by default, or
any dataset decoded as a run of it would be), in a seeded order so every batch mixes
classes, prepared with the model's own normalisation, on the probe's device."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from finetune.config import DataConfig, TrainConfig
from finetune.data import ImageSet, get_dataset
from finetune.data.augment import BatchPrep
from finetune.data.block_shuffle import BlockShuffle
from finetune.data.input_spec import InputSpec, recorded_input
from finetune.data.loader import Batches, epoch_order, fits_on_device
from finetune.distributed import Processes
from finetune.errors import ConfigError
from finetune.models import create_model
from finetune.runs import LoadedRun
from finetune.runtime import Runtime, resolve_runtime


@dataclass(frozen=True)
class ProbeData:
    """Examples ``order`` of ``dataset``, served by ``batches``."""

    spec: str
    split: str
    dataset: ImageSet
    batches: Batches
    order: torch.Tensor

    def __len__(self) -> int:
        return len(self.order)


def probe_runtime(device: str = "auto", precision: str = "auto") -> Runtime:
    """Device and precision for measuring (bf16 and channels_last on a GPU under auto)."""
    return resolve_runtime(TrainConfig(device=device, precision=precision))


def probe_data(
    run: LoadedRun,
    runtime: Runtime,
    *,
    spec: str | None = None,
    split: str = "test",
    examples: int | None = None,
    seed: int = 0,
) -> ProbeData:
    """``examples`` examples (all when None) of ``split`` of ``spec`` (default: the run's
    dataset, at the run's image size; the training split keeps the run's subsample)."""
    data = run.config.data
    spec = spec or data.spec
    own = spec == data.spec
    dataset = get_dataset(
        spec,
        split,
        data_root=data.data_root,
        download=data.download,
        image_size=run.record["data"]["image_size"],
        interpolation=recorded_input(run.record).interpolation,
        train_per_class=data.train_per_class if own and split == "train" else None,
        val_fraction=data.val_fraction,
        split_seed=data.split_seed,
    )
    return _serve(data, spec, split, dataset, runtime, examples, seed)


def split_data(
    data: DataConfig,
    split: str,
    spec: InputSpec,
    runtime: Runtime,
    *,
    examples: int | None = None,
    seed: int = 0,
) -> ProbeData:
    """``examples`` examples (all when None) of ``split`` of ``data.spec``, decoded as a run
    of ``data`` with the input ``spec`` would decode them (the training split keeps
    ``data.train_per_class``): a probe of a dataset without a run."""
    dataset = get_dataset(
        data.spec,
        split,
        data_root=data.data_root,
        download=data.download,
        image_size=spec.stored_size,
        interpolation=spec.interpolation,
        train_per_class=data.train_per_class if split == "train" else None,
        val_fraction=data.val_fraction,
        split_seed=data.split_seed,
    )
    return _serve(data, data.spec, split, dataset, runtime, examples, seed)


def _serve(
    data: DataConfig,
    spec: str,
    split: str,
    dataset: ImageSet,
    runtime: Runtime,
    examples: int | None,
    seed: int,
) -> ProbeData:
    """The first ``examples`` of a seeded order of ``dataset``, served on the device."""
    if examples is not None and examples < 1:
        raise ConfigError(f"--examples must be positive, got {examples}")
    order = epoch_order(len(dataset), seed, -1)[:examples]
    on_device = fits_on_device(dataset, data.device_data)
    batches = Batches(dataset, runtime.device, on_device=on_device, workers=data.workers)
    return ProbeData(spec, split, dataset, batches, order)


def batch_sizes(n: int, batch_size: int, minimum: int = 1) -> list[int]:
    """Split ``n`` examples into batches of ``batch_size``; a last batch smaller than
    ``minimum`` joins the one before it (minibatch CKA needs at least 4 per batch)."""
    if n < minimum:
        raise ConfigError(f"need at least {minimum} examples, got {n}")
    sizes = [batch_size] * (n // batch_size)
    rest = n - sum(sizes)
    if rest and (rest >= minimum or not sizes):
        sizes.append(rest)
    elif rest:
        sizes[-1] += rest
    return sizes


def process_batches(
    data: ProbeData, sizes: list[int], processes: Processes
) -> tuple[ProbeData, list[int]]:
    """This process's batches of ``data`` cut into ``sizes``: every ``world``-th batch from
    its rank on, so the processes together see each batch once (all of them on one
    process). A process may get none when there are fewer batches than processes."""
    if not processes.parallel:
        return data, sizes
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    mine = range(processes.rank, len(sizes), processes.world)
    parts = [data.order[starts[i] : starts[i] + sizes[i]] for i in mine]
    order = torch.cat(parts) if parts else data.order[:0]
    return dataclasses.replace(data, order=order), [sizes[i] for i in mine]


def iterate_sized(data: ProbeData, sizes: list[int]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of ``data`` with the sizes ``batch_sizes`` gave: equal ones, then the
    last (possibly larger) one."""
    if not sizes:
        return
    full = sum(sizes[:-1])
    if full:
        yield from data.batches.iterate(data.order[:full], sizes[0])
    yield from data.batches.iterate(data.order[full:], sizes[-1])


def eval_prep(run: LoadedRun, runtime: Runtime) -> BatchPrep:
    """The evaluation preparation the run had (its recorded input spec): centre crop to
    the model's input size, the model's normalisation, no augmentation, and the run's
    block shuffle if it was trained on block-shuffled images."""
    data = run.config.data
    spec = recorded_input(run.record)
    shuffle = None
    if data.block_shuffle is not None:
        shuffle = BlockShuffle(
            spec.size,
            data.block_shuffle,
            scheme=data.shuffle_scheme,
            seed=data.shuffle_seed,
            device=runtime.device,
        )
    return input_prep(spec, runtime, shuffle)


def input_prep(spec: InputSpec, runtime: Runtime, shuffle: BlockShuffle | None = None) -> BatchPrep:
    """Evaluation preparation of the input ``spec``: centre crop to its size, its
    normalisation, no augmentation, then ``shuffle`` when given."""
    return BatchPrep(
        spec.mean,
        spec.std,
        runtime.device,
        augment=False,
        flip=False,
        channels_last=runtime.channels_last,
        shuffle=shuffle,
        size=spec.size,
    )


def model_prep(
    model: nn.Module, runtime: Runtime, shuffle: BlockShuffle | None = None
) -> BatchPrep:
    """Evaluation preparation with ``model``'s own normalisation: no augmentation."""
    cfg = model.pretrained_cfg
    return BatchPrep(
        cfg.get("mean"),
        cfg.get("std"),
        runtime.device,
        augment=False,
        flip=False,
        channels_last=runtime.channels_last,
        shuffle=shuffle,
    )


def random_twins(
    name: str, num_classes: int, image_size: int, runtime: Runtime
) -> tuple[nn.Module, nn.Module]:
    """Two randomly initialised models of one architecture (seeds 0 and 1) in eval mode on
    the runtime's device: what the benchmarks compare in place of two runs."""
    twins = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = create_model(name, num_classes, image_size).to(runtime.device).eval()
        if runtime.channels_last:
            model = model.to(memory_format=torch.channels_last)
        twins.append(model)
    return twins[0], twins[1]
