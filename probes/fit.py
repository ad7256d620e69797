"""Fit measures: how well a model's initial weights fit a target dataset, before any
fine-tuning, per layer group, on the target's training split alone (the validation split
is left to the fine-tuning's own selection). Every group's representation (what it hands to
the next group, averaged over positions or tokens) is classified by a k-nearest-neighbour
vote and a linear probe under stratified K-fold cross-validation (every training example
predicted once by a classifier that never saw it: a target of 10 images per class gives 10
predictions per class, where its validation split would give one) and scored by LogME (You
et al. 2021), which needs no held-out split; the penultimate features (the classifier's
input, timm's ``forward_head(x, pre_logits=True)``) get LogME too; every BatchNorm layer's
input statistics on the split are compared with its running statistics. Each measure comes
with a standard error (``probes.cross_validation``): accuracies as means over examples, the
others by the delete-one-fold jackknife. The head group is left out: its output is the new,
untrained classifier's logits. Images are decoded and prepared as a fine-tuning of the same
model and data options would evaluate them."""

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
from probes.cross_validation import (
    DEFAULT_FOLDS,
    fold_count,
    jackknife_se,
    mean_se,
    out_of_fold_correct,
    paired_se,
    stratified_folds,
)
from probes.frozen import knn_predict, linear_probe_out_of_fold
from probes.inputs import ProbeData, input_prep, split_data
from probes.logme import LogMEResult, logme
from probes.options import ProbeOptions
from probes.statistics import plus_minus

BN_MEASURE = "mean over channels of the symmetric KL divergence KL(p||q) + KL(q||p)"
LINEAR_L2 = 1e-3
PROTOCOL = (
    "stratified K-fold cross-validation on the training split (kNN, linear probe; standard "
    "error of the mean over examples); LogME and BN distance on the whole split, standard "
    "error by the delete-one-fold jackknife"
)

DEFAULT_BATCH_SIZE = 256


@dataclass
class FitResult:
    """The fit measures of one model on one target; arrays are per layer group (all but the
    head, input to output; ``*_se`` their standard errors), per BatchNorm layer, or per
    training example (N: the cross-validated correctness, (G, N), its labels and folds)."""

    model: str
    init: str
    data: str
    input: InputSpec
    groups: list[str]
    features: np.ndarray
    knn_acc: np.ndarray
    knn_se: np.ndarray
    linear_acc: np.ndarray
    linear_se: np.ndarray
    group_logme: np.ndarray
    group_logme_se: np.ndarray
    bn_distance: np.ndarray
    bn_se: np.ndarray
    bn_layers: list[str]
    bn_group: np.ndarray
    bn_layer_distance: np.ndarray
    knn_correct: np.ndarray
    linear_correct: np.ndarray
    labels: np.ndarray
    fold: np.ndarray
    logme: LogMEResult
    logme_se: float
    pre_logits_features: int
    classes: int
    train_examples: int
    train_per_class: int
    folds: int
    k: int
    seconds: float

    def probe_difference(self, a: int, b: int) -> tuple[float, float]:
        """Linear-probe accuracy of group ``a`` minus group ``b``, and the standard error of
        that difference (paired: both are predictions of the same examples)."""
        correct = self.linear_correct
        return float(correct[a].mean() - correct[b].mean()), paired_se(correct[a], correct[b])

    def table(self) -> str:
        lines = [
            f"fit of {self.model} ({self.init}) to {self.data}: {self.train_examples} training "
            f"examples ({self.train_per_class} per class at the fewest), {self.classes} "
            f"classes, {self.input.size} px, {self.folds}-fold cross-validation, k={self.k}; "
            "each measure ± its standard error",
            f"{'group':<24s}{'features':>9s}{'kNN acc':>16s}{'linear acc':>16s}"
            f"{'LogME':>16s}{'BN distance':>22s}",
        ]
        for i, name in enumerate(self.groups):
            lines.append(
                f"{name:<24s}{self.features[i]:>9d}"
                f"{plus_minus(self.knn_acc[i], self.knn_se[i]):>16s}"
                f"{plus_minus(self.linear_acc[i], self.linear_se[i]):>16s}"
                f"{plus_minus(self.group_logme[i], self.group_logme_se[i]):>16s}"
                f"{plus_minus(self.bn_distance[i], self.bn_se[i], '.3g', '.2g'):>22s}"
            )
        lines.append(
            f"LogME of the penultimate features ({self.pre_logits_features}): "
            f"{plus_minus(self.logme.score, self.logme_se)}"
        )
        return "\n".join(lines)


def fit_measures(
    model: ModelConfig,
    data: DataConfig,
    *,
    k: int = 10,
    folds: int = DEFAULT_FOLDS,
    options: ProbeOptions = ProbeOptions(),
    out: str | Path | None = None,
    command: str | None = None,
) -> FitResult:
    """The fit measures of ``model`` (its ``init`` weights, timm's pre-trained ones, or a
    random init drawn with ``options.seed``) on the training split of ``data`` (at most
    ``options.examples``, a seeded subset), with ``folds``-fold cross-validation (at most
    the smallest class's size; the folds drawn with ``options.seed``), in batches of
    ``options.batch_size`` (default 256); written to ``out`` (kind ``fit``) when given.
    Deterministic for a given seed and device. ``options.data``, ``split`` and
    ``bn_batches`` do not apply: ``data`` says what is measured."""
    start = time.perf_counter()
    if k < 1:
        raise ConfigError(f"--k must be positive, got {k}")
    runtime = options.runtime()
    seed, examples = options.seed, options.examples
    batch_size = options.batch_size_or(DEFAULT_BATCH_SIZE)
    spec = resolve_input(model, data, resolve_spec(data.spec)[0].default_image_size)
    train = split_data(data, "train", spec, runtime, examples=examples, seed=seed)
    classes = train.dataset.num_classes
    labels = train.dataset.targets[train.order.cpu().numpy()]
    folds = fold_count(labels, folds)
    fold = stratified_folds(labels, folds, seed)
    net, init = _initial_model(model, classes, spec.size, seed, runtime)
    layers = group_layers(net)[:-1] + [Layer("pre_logits", "input", (_classifier_name(net),))]

    bn = BatchNormInputs(net, blocks=folds)
    with bn:
        features = _features(net, layers, train, spec, runtime, batch_size)
    target = torch.as_tensor(labels, device=features[0].device)
    k = min(k, len(labels) - int(np.bincount(fold).max()))

    def knn(a: torch.Tensor, y: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return knn_predict(a, y, query, k, classes)

    body = features[:-1]
    knn_correct = np.stack([out_of_fold_correct(f, target, fold, knn) for f in body])
    fold_t = torch.as_tensor(fold)
    predicted = [linear_probe_out_of_fold(f, target, fold_t, classes, l2=LINEAR_L2) for f in body]
    linear_correct = np.stack([(p == target).cpu().numpy() for p in predicted])
    logmes = [_logme_with_se(f, labels, fold, classes) for f in features]
    groups = [layer.name for layer in layers[:-1]]
    bn_group = _owning_groups(net, bn.names)
    bn_layer_distance = np.array(bn.distances(), dtype=np.float64)
    bn_without = np.array([bn.distances(without=b) for b in range(folds)]).reshape(folds, -1)
    by_group = [bn_group == g for g in range(len(groups))]
    bn_distance = np.array([_mean_or_nan(bn_layer_distance[m]) for m in by_group])
    bn_se = np.array(
        [jackknife_se(bn_without[:, m].mean(1)) if m.any() else np.nan for m in by_group]
    )
    result = FitResult(
        model=model.name,
        init=init,
        data=data.spec,
        input=spec,
        groups=groups,
        features=np.array([f.shape[1] for f in body], dtype=np.int64),
        knn_acc=knn_correct.mean(1),
        knn_se=np.array([mean_se(c) for c in knn_correct]),
        linear_acc=linear_correct.mean(1),
        linear_se=np.array([mean_se(c) for c in linear_correct]),
        group_logme=np.array([score.score for score, _ in logmes[:-1]]),
        group_logme_se=np.array([se for _, se in logmes[:-1]]),
        bn_distance=bn_distance,
        bn_se=bn_se,
        bn_layers=bn.names,
        bn_group=bn_group,
        bn_layer_distance=bn_layer_distance,
        knn_correct=knn_correct,
        linear_correct=linear_correct,
        labels=labels,
        fold=fold,
        logme=logmes[-1][0],
        logme_se=logmes[-1][1],
        pre_logits_features=features[-1].shape[1],
        classes=classes,
        train_examples=len(train),
        train_per_class=int(np.bincount(train.dataset.targets, minlength=classes).min()),
        folds=folds,
        k=k,
        seconds=time.perf_counter() - start,
    )
    if out is not None:
        _write(Path(out), result, data, seed, runtime, command)
    return result


def _logme_with_se(
    features: torch.Tensor, labels: np.ndarray, fold: np.ndarray, classes: int
) -> tuple[LogMEResult, float]:
    """LogME of all ``features`` and its jackknife standard error over the folds."""
    features, target = features.cpu(), torch.as_tensor(labels)
    without = [
        logme(features[torch.as_tensor(fold != b)], target[fold != b], classes).score
        for b in range(int(fold.max()) + 1)
    ]
    return logme(features, target, classes), float(jackknife_se(np.array(without)))


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
) -> list[torch.Tensor]:
    """Every layer's mean-pooled features (float32) of all of ``data``, in its order."""
    prep = input_prep(spec, runtime)
    parts: list[list[torch.Tensor]] = [[] for _ in layers]
    with ActivationCapture(net, layers, pool="mean") as capture:
        for images, _ in data.batches.iterate(data.order, batch_size):
            with runtime.autocast():
                net(prep(images))
            for part, feature in zip(parts, capture.take()):
                part.append(feature.float())
    return [torch.cat(part) for part in parts]


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
            "groups/knn_se": result.knn_se,
            "groups/linear_acc": result.linear_acc,
            "groups/linear_se": result.linear_se,
            "groups/logme": result.group_logme,
            "groups/logme_se": result.group_logme_se,
            "groups/bn_distance": result.bn_distance,
            "groups/bn_se": result.bn_se,
            "examples/label": result.labels,
            "examples/fold": result.fold,
            "examples/knn_correct": result.knn_correct,
            "examples/linear_correct": result.linear_correct,
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
            "protocol": PROTOCOL,
            "folds": result.folds,
            "seed": seed,
            "device": runtime.describe(),
        },
        summary={
            "logme": result.logme.score,
            "logme_se": result.logme_se,
            "pre_logits_features": result.pre_logits_features,
            "classes": result.classes,
            "train_examples": result.train_examples,
            "train_per_class": result.train_per_class,
            "seconds": result.seconds,
        },
        command=command,
    )
