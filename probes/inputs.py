"""The data a probe feeds to a model: a split of a dataset (a run's own by default, or
any dataset decoded as a run of it would be), in a seeded order so every batch mixes
classes, prepared with the model's own normalisation, on the probe's device."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from finetune.config import DataConfig
from finetune.data import ImageSet, dataset_options, get_dataset
from finetune.data.augment import BatchPrep
from finetune.data.block_shuffle import BlockShuffle
from finetune.data.input_spec import InputSpec, recorded_input
from finetune.data.loader import Batches, epoch_order, fits_on_device
from finetune.distributed import Processes
from finetune.errors import ConfigError
from finetune.evaluation.batches import FixedBatches, fixed_batches
from finetune.evaluation.batchnorm import has_batchnorm
from finetune.runs import LoadedRun
from finetune.runtime import Runtime
from probes.options import ProbeOptions


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

    def fixed(
        self,
        batch_size: int,
        processes: Processes,
        *,
        minimum: int = 1,
        ascending: bool = False,
    ) -> FixedBatches:
        """These examples as fixed batches, this process's share under DDP; ``ascending``
        reads them in index order (the engine's evaluation order, so a whole split gives
        the engine's batches), else in their seeded order."""
        order = self.order.sort().values if ascending else self.order
        return fixed_batches(self.batches, order, batch_size, processes, minimum=minimum)


@dataclass(frozen=True)
class RunInputs:
    """A run's model and what measuring it needs (``finetune.evaluation.measure``): its
    evaluation preparation, the fixed batches it is measured on and, when BatchNorm is
    re-estimated, the fixed training batches for that."""

    model: nn.Module
    prep: BatchPrep
    runtime: Runtime
    spec: str
    batch_size: int
    data: FixedBatches
    bn_data: FixedBatches | None

    @property
    def bn_batches(self) -> int:
        return self.bn_data.batches if self.bn_data is not None else 0

    @property
    def bn_examples(self) -> int:
        return self.bn_data.examples if self.bn_data is not None else 0

    def provenance(self, run: LoadedRun, seed: int) -> dict[str, object]:
        """The root attributes of every result file measured on these inputs
        (results/README.md): the architecture, the data and its batch size, the examples
        BatchNorm was re-estimated on, the seed and the device."""
        return {
            "model": run.config.model.name,
            "data": self.spec,
            "batch_size": self.batch_size,
            "bn_examples": self.bn_examples,
            "seed": seed,
            "device": self.runtime.describe(),
        }


def run_inputs(run: LoadedRun, runtime: Runtime, options: ProbeOptions) -> RunInputs:
    """The inputs of ``run``'s model under ``options``: its examples of ``options.split`` in
    index order and, with ``options.bn_batches`` > 0 and a model with BatchNorm, that many
    batches of the training split (in their seeded order) to re-estimate statistics on."""
    batch_size = options.batch_size_or(run.config.train.eval_batch_size)
    evaluation = probe_data(run, runtime, options)
    bn_data = bn_batches(run, runtime, options, batch_size)
    data = evaluation.fixed(batch_size, runtime.processes, ascending=True)
    prep = eval_prep(run, runtime)
    return RunInputs(run.model, prep, runtime, evaluation.spec, batch_size, data, bn_data)


def bn_batches(
    run: LoadedRun, runtime: Runtime, options: ProbeOptions, batch_size: int
) -> FixedBatches | None:
    """``options.bn_batches`` batches of ``batch_size`` of the run's training split (in
    their seeded order) to re-estimate BatchNorm statistics on; None with 0 batches or a
    model without BatchNorm."""
    if options.bn_batches == 0 or not has_batchnorm(run.model):
        return None
    train = dataclasses.replace(options, split="train", examples=options.bn_batches * batch_size)
    return probe_data(run, runtime, train).fixed(batch_size, runtime.processes, minimum=2)


def probe_data(run: LoadedRun, runtime: Runtime, options: ProbeOptions) -> ProbeData:
    """``options.examples`` examples (all when None) of ``options.split`` of
    ``options.data`` (default: the run's dataset, at the run's image size, split as the
    run split it: its validation carve or fold, its training subsample), in the order
    seeded by ``options.seed``."""
    data = run.config.data
    spec = options.data or data.spec
    own = spec == data.spec
    split = options.split
    dataset = get_dataset(
        spec,
        split,
        image_size=run.record["data"]["image_size"],
        interpolation=recorded_input(run.record).interpolation,
        **dataset_options(data, own=own),
    )
    return _serve(data, spec, split, dataset, runtime, options.examples, options.seed)


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
    of ``data`` with the input ``spec`` would decode and split them (its validation carve
    or fold, its training subsample): a probe of a dataset without a run."""
    dataset = get_dataset(
        data.spec,
        split,
        image_size=spec.stored_size,
        interpolation=spec.interpolation,
        **dataset_options(data),
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
