"""Fit measures (issue 6): how well a model's initial weights fit a target dataset, before
any fine-tuning, per layer group. Every group's representation (what it hands to the next
group, averaged over positions or tokens) of the target's training split is the training
set of a k-nearest-neighbour vote and of a linear probe, both scored on the validation
split; the penultimate features (the classifier's input, timm's ``forward_head(x,
pre_logits=True)``) get LogME; every BatchNorm layer's input statistics on the training
split are compared with its running statistics. The head group is left out: its output
is the new, untrained classifier's logits. Images are decoded and prepared as a
fine-tuning of the same model and data options would evaluate them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from finetune.config import DataConfig, ModelConfig
from finetune.data import resolve_spec
from finetune.data.input_spec import InputSpec, resolve_input
from finetune.errors import ConfigError
from finetune.groups import layer_groups
from finetune.models import check_input_size, create_model, load_init
from finetune.result_files import write_result
from finetune.runtime import Runtime
from probes.activations import ActivationCapture, Layer, group_layers
from probes.bn_shift import BatchNormInputs
from probes.frozen import knn_accuracy, linear_probe_accuracy
from probes.inputs import ProbeData, input_prep, split_data
from probes.logme import LogMEResult, logme
from probes.options import ProbeOptions

BN_MEASURE = "mean over channels of the symmetric KL divergence KL(p||q) + KL(q||p)"
LINEAR_L2 = 1e-3

DEFAULT_BATCH_SIZE = 256

@dataclass
class FitResult:
    """The fit measures of one model on one target; arrays are per layer group (all but the
    head, input to output) or per BatchNorm layer."""

    model: str
    init: str
    data: str
    input: InputSpec
    groups: list[str]
    features: np.ndarray
    knn_acc: np.ndarray
    linear_acc: np.ndarray
    bn_distance: np.ndarray
    bn_layers: list[str]
    bn_group: np.ndarray
    bn_layer_distance: np.ndarray
    logme: LogMEResult
    pre_logits_features: int
    classes: int
    train_examples: int
    val_examples: int
    k: int
    seconds: float

    def table(self) -> str:
        lines = [
            f"fit of {self.model} ({self.init}) to {self.data}: {self.train_examples} train / "
            f"{self.val_examples} val examples, {self.classes} classes, {self.input.size} px, "
            f"k={self.k}",
            f"{'group':<24s}{'features':>9s}{'kNN acc':>9s}{'linear acc':>12s}{'BN distance':>13s}",
        ]
        for i, name in enumerate(self.groups):
            lines.append(
                f"{name:<24s}{self.features[i]:>9d}{self.knn_acc[i]:>9.4f}"
                f"{self.linear_acc[i]:>12.4f}{self.bn_distance[i]:>13.4f}"
            )
        lines.append(
            f"LogME of the penultimate features ({self.pre_logits_features}): "
            f"{self.logme.score:.4f}"
        )
        return "\n".join(lines)


def fit_measures(
    model: ModelConfig,
    data: DataConfig,
    *,
    k: int = 10,
    options: ProbeOptions = ProbeOptions(),
    out: str | Path | None = None,
    command: str | None = None,
) -> FitResult:
    """The fit measures of ``model`` (its ``init`` weights, timm's pre-trained ones, or a
    random init drawn with ``options.seed``) on ``data``: features of the training split (at
    most ``options.examples``, a seeded subset) against those of the validation split (as
    many), in batches of ``options.batch_size`` (default 256); written to ``out`` (kind
    ``fit``) when given. Deterministic for a given seed and device. ``options.data``,
    ``split`` and ``bn_batches`` do not apply: ``data`` says what is measured."""
    start = time.perf_counter()
    if k < 1:
        raise ConfigError(f"--k must be positive, got {k}")
    runtime = options.runtime()
    seed, examples = options.seed, options.examples
    batch_size = options.batch_size_or(DEFAULT_BATCH_SIZE)
    spec = resolve_input(model, data, resolve_spec(data.spec)[0].default_image_size)
    train = split_data(data, "train", spec, runtime, examples=examples, seed=seed)
    val = split_data(data, "val", spec, runtime, examples=examples, seed=seed)
    if len(train) < 2 or len(val) < 1:
        raise ConfigError(
            f"{data.spec} gives {len(train)} training and {len(val)} validation example(s); "
            "the fit measures need at least 2 and 1"
        )
    classes = train.dataset.num_classes
    net, init = _initial_model(model, classes, spec.size, seed, runtime)
    layers = group_layers(net)[:-1] + [Layer("pre_logits", "input", (_classifier_name(net),))]

    bn = BatchNormInputs(net)
    with bn:
        train_features, train_labels = _features(net, layers, train, spec, runtime, batch_size)
    val_features, val_labels = _features(net, layers, val, spec, runtime, batch_size)
    knn, linear = [], []
    for a, b in zip(train_features[:-1], val_features[:-1]):
        knn.append(knn_accuracy(a, train_labels, b, val_labels, k, classes))
        linear.append(linear_probe_accuracy(a, train_labels, b, val_labels, classes, l2=LINEAR_L2))
    groups = [layer.name for layer in layers[:-1]]
    bn_group = _owning_groups(net, bn.names)
    bn_layer_distance = np.array(bn.distances(), dtype=np.float64)
    result = FitResult(
        model=model.name,
        init=init,
        data=data.spec,
        input=spec,
        groups=groups,
        features=np.array([f.shape[1] for f in train_features[:-1]], dtype=np.int64),
        knn_acc=np.array(knn, dtype=np.float64),
        linear_acc=np.array(linear, dtype=np.float64),
        bn_distance=np.array(
            [_mean_or_nan(bn_layer_distance[bn_group == g]) for g in range(len(groups))]
        ),
        bn_layers=bn.names,
        bn_group=bn_group,
        bn_layer_distance=bn_layer_distance,
        logme=logme(train_features[-1].cpu(), train_labels.cpu(), classes),
        pre_logits_features=train_features[-1].shape[1],
        classes=classes,
        train_examples=len(train),
        val_examples=len(val),
        k=min(k, len(train)),
        seconds=time.perf_counter() - start,
    )
    if out is not None:
        _write(Path(out), result, data, seed, runtime, command)
    return result


def _initial_model(
    model: ModelConfig, classes: int, size: int, seed: int, runtime: Runtime
) -> tuple[nn.Module, str]:
    """The model with its initial weights (new layers drawn with ``seed``), in eval mode on
    the runtime's device, and where its weights came from."""
    torch.manual_seed(seed)
    net = create_model(model.name, classes, size, pretrained=model.pretrained)
    check_input_size(net, model.name, size)
    init = f"random init, seed {seed}"
    if model.pretrained:
        init = "timm pre-trained"
    if model.init:
        load_init(net, model.init)
        init = str(model.init)
    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    return net.to(runtime.device, memory_format=memory_format).eval(), init


def _classifier_name(net: nn.Module) -> str:
    head = net.get_classifier()
    for name, module in net.named_modules():
        if module is head and name:
            return name
    raise ConfigError(f"{type(net).__name__} has no classifier module to read features from")


@torch.no_grad()
def _features(
    net: nn.Module,
    layers: list[Layer],
    data: ProbeData,
    spec: InputSpec,
    runtime: Runtime,
    batch_size: int,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Every layer's mean-pooled features (float32) of all of ``data``, and the labels."""
    prep = input_prep(spec, runtime)
    parts: list[list[torch.Tensor]] = [[] for _ in layers]
    labels = []
    with ActivationCapture(net, layers, pool="mean") as capture:
        for images, targets in data.batches.iterate(data.order, batch_size):
            with runtime.autocast():
                net(prep(images))
            for part, feature in zip(parts, capture.take()):
                part.append(feature.float())
            labels.append(targets)
    return [torch.cat(part) for part in parts], torch.cat(labels)


def _owning_groups(net: nn.Module, names: list[str]) -> np.ndarray:
    """The layer group holding each named module's parameters (-1 for none)."""
    owner = {p: g.index for g in layer_groups(net) for p in g.params}
    return np.array(
        [next((g for p, g in owner.items() if p.startswith(f"{n}.")), -1) for n in names],
        dtype=np.int64,
    )


def _mean_or_nan(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def _write(
    out: Path,
    result: FitResult,
    data: DataConfig,
    seed: int,
    runtime: Runtime,
    command: str | None,
) -> None:
    write_result(
        out,
        "fit",
        {
            "groups/names": result.groups,
            "groups/features": result.features,
            "groups/knn_acc": result.knn_acc,
            "groups/linear_acc": result.linear_acc,
            "groups/bn_distance": result.bn_distance,
            "bn/layers": np.array(result.bn_layers, dtype=h5py.string_dtype()),
            "bn/group": result.bn_group,
            "bn/distance": result.bn_layer_distance,
            "logme/evidence": result.logme.evidence.numpy(),
            "logme/alpha": result.logme.alpha.numpy(),
            "logme/beta": result.logme.beta.numpy(),
        },
        attrs={
            "model": result.model,
            "init": result.init,
            "data": result.data,
            "train_per_class": data.train_per_class,
            "val_fraction": data.val_fraction,
            "split_seed": data.split_seed,
            "input": result.input.to_dict(),
            "k": result.k,
            "pool": "mean",
            "linear_l2": LINEAR_L2,
            "bn_measure": BN_MEASURE,
            "seed": seed,
            "device": runtime.describe(),
        },
        summary={
            "logme": result.logme.score,
            "pre_logits_features": result.pre_logits_features,
            "classes": result.classes,
            "train_examples": result.train_examples,
            "val_examples": result.val_examples,
            "seconds": result.seconds,
        },
        command=command,
    )
