"""Parameter distance between two weight sets of one architecture (a run and its init, or
two runs): per tensor and per layer group, the L2 distance, the distance relative to the
reference's norm and the cosine similarity."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from finetune.errors import IncompatibleWeightsError
from finetune.groups import LayerGroup, layer_groups
from finetune.result_files import write_result
from finetune.runs import load_run, pair_attrs


@dataclass
class Distances:
    """Distances of ``a`` from the reference ``b``, per tensor, per group and overall."""

    label_a: str
    label_b: str
    tensor_names: list[str]
    tensor_groups: np.ndarray
    tensor_numel: np.ndarray
    tensor: dict[str, np.ndarray]
    group_names: list[str]
    group: dict[str, np.ndarray]
    total: dict[str, float]

    def table(self) -> str:
        lines = [
            f"{self.label_a} against {self.label_b}",
            f"{'group':<28s}{'distance':>12s}{'relative':>10s}{'cosine':>9s}",
        ]
        for i, name in enumerate(self.group_names):
            lines.append(
                f"{name:<28s}{self.group['distance'][i]:>12.4f}"
                f"{self.group['relative_distance'][i]:>10.4f}{self.group['cosine'][i]:>9.4f}"
            )
        t = self.total
        lines.append(
            f"{'all parameters':<28s}{t['distance']:>12.4f}{t['relative_distance']:>10.4f}"
            f"{t['cosine']:>9.4f}"
        )
        return "\n".join(lines)


@torch.no_grad()
def parameter_distance(
    a: dict[str, torch.Tensor],
    b: dict[str, torch.Tensor],
    groups: list[LayerGroup],
    *,
    label_a: str = "a",
    label_b: str = "b",
) -> Distances:
    """``||a - b||``, ``||a - b|| / ||b||`` and ``<a, b> / (||a|| ||b||)`` per tensor of the
    groups' parameters, per group and over all of them, in float64. Refuses weight sets of
    different architectures, naming the first tensor that differs."""
    names = [n for g in groups for n in g.params]
    _check_same_architecture(a, b, names, label_a, label_b)
    dot, norm_a, norm_b, diff = (np.zeros(len(names)) for _ in range(4))
    for i, name in enumerate(names):
        x, y = a[name].double().flatten(), b[name].double().flatten()
        dot[i] = float(x @ y)
        norm_a[i] = float(x @ x)
        norm_b[i] = float(y @ y)
        diff[i] = float(torch.sum((x - y) ** 2))
    owner = np.array([gi for gi, g in enumerate(groups) for _ in g.params], dtype=np.int64)

    def measures(d: np.ndarray, p: np.ndarray, na: np.ndarray, nb: np.ndarray):
        with np.errstate(divide="ignore", invalid="ignore"):
            return {
                "distance": np.sqrt(d),
                "relative_distance": np.where(nb > 0, np.sqrt(d) / np.sqrt(nb), np.nan),
                "cosine": np.where(na * nb > 0, p / np.sqrt(na * nb), np.nan),
            }

    sums = [
        np.bincount(owner, weights=v, minlength=len(groups)) for v in (diff, dot, norm_a, norm_b)
    ]
    total = measures(*(np.array([v.sum()]) for v in (diff, dot, norm_a, norm_b)))
    return Distances(
        label_a,
        label_b,
        names,
        owner,
        np.array([a[n].numel() for n in names], dtype=np.int64),
        measures(diff, dot, norm_a, norm_b),
        [g.name for g in groups],
        measures(*sums),
        {k: float(v[0]) for k, v in total.items()},
    )


def _check_same_architecture(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], names: list[str], la: str, lb: str
) -> None:
    for name in names:
        for side, label in ((a, la), (b, lb)):
            if name not in side:
                raise IncompatibleWeightsError(
                    f"{label} has no tensor {name!r}: not the same architecture"
                )
        if a[name].shape != b[name].shape:
            raise IncompatibleWeightsError(
                f"{la} and {lb} differ at {name!r}: shape {tuple(a[name].shape)} against "
                f"{tuple(b[name].shape)}"
            )


def distance_between_runs(
    run_a: str | Path,
    run_b: str | Path = "init",
    *,
    out: str | Path | None = None,
    command: str | None = None,
) -> Distances:
    """Distances of ``run_a``'s weights from ``run_b``'s (a run, a weights file of one,
    or ``init``: ``run_a``'s initial weights), written to ``out`` (kind ``distance``)."""
    a = load_run(run_a)
    b = load_run(run_b, base=run_a)
    if a.config.model.name != b.config.model.name:
        raise IncompatibleWeightsError(
            f"{a.label} is a {a.config.model.name} and {b.label} a {b.config.model.name}"
        )
    result = parameter_distance(
        a.model.state_dict(),
        b.model.state_dict(),
        layer_groups(a.model),
        label_a=a.label,
        label_b=b.label,
    )
    if out is not None:
        datasets = {
            "tensors/names": result.tensor_names,
            "groups/names": result.group_names,
            "tensors/group": result.tensor_groups,
            "tensors/numel": result.tensor_numel,
        }
        datasets.update({f"tensors/{k}": v for k, v in result.tensor.items()})
        datasets.update({f"groups/{k}": v for k, v in result.group.items()})
        write_result(
            Path(out),
            "distance",
            datasets,
            attrs={
                **pair_attrs(a, b),
                "model": a.config.model.name,
            },
            summary=result.total,
            command=command,
        )
    return result
