"""What the probe benchmarks measure in place of two runs: two randomly initialised models
of one architecture, prepared with the model's own normalisation."""

from __future__ import annotations

import torch
from torch import nn

from finetune.data.augment import BatchPrep
from finetune.data.block_shuffle import BlockShuffle
from finetune.models import create_model
from finetune.runtime import Runtime


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
