"""Module criticality (Chatterji, Neyshabur, Sedghi 2019), the measure Neyshabur, Sedghi,
Zhang 2020 use to ask which layers carry a transfer: how far a layer group can be moved back
toward its initial weights, every other group at its final weights, before the training
error rises.

For layer group ``i`` the **rewind** ``theta_i(a) = (1 - a) theta_i^0 + a theta_i^F`` (its
parameters and its modules' floating buffers, such as BatchNorm's statistics; every other
tensor final) is measured at every ``a`` of ``linspace(0, 1, points)`` with the barrier's
measuring function (``finetune.evaluation.measure``: a fixed seeded subset of the training
split, evaluation preparation, BatchNorm statistics re-estimated at every point). Its
**criticality** is

    min over a in [0, 1], sigma > 0 of  a^2 ||theta_i^F - theta_i^0||^2 / sigma^2
    subject to  mean error at theta_i(a) + N(0, sigma^2 I)  <=  final error + epsilon,

searched on the grid of the rewind's ``a`` and ``sigmas`` (fractions of the group's
root-mean-square final weight, so that one grid fits groups of any scale; the objective
uses the absolute sigma). The noise is added to the group's parameters only, ``draws``
standard Gaussian directions per group (seeded by the seed and the group's index) scaled
by every sigma, the same directions at every ``a``. When the group at ``theta_i^0`` already
meets the constraint without noise, the criticality is 0 at ``a = 0`` (the limit sigma ->
0): the group is not critical. When no grid point meets it, the criticality is infinite
(beyond the grid: smaller sigmas would tell).

The whole model is also measured along the same line (every tensor from ``theta^0`` to
``theta^F``: the barrier's line on the training split); its end at ``a = 1`` is the run's
own training error, the reference of the constraint."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune import rundir
from finetune.errors import ConfigError
from finetune.evaluation.measure import measure
from finetune.groups import LayerGroup, layer_groups
from finetune.result_files import write_result
from finetune.runs import LoadedRun, load_run, pair_attrs
from landscape.geometry.options import CriticalityOptions
from landscape.geometry.paths import Line, State, check_compatible
from probes.change import group_tensors
from probes.inputs import RunInputs, run_inputs

# Errors are fractions of the examples; the constraint allows for their rounding.
ROUNDING = 1e-9


@dataclass(frozen=True)
class Criticality:
    """A group's criticality and the grid point that attains it (``alpha`` and ``sigma``
    NaN when no point meets the constraint; ``sigma`` 0 when the noiseless group at
    ``theta^0`` does)."""

    value: float
    alpha: float
    sigma: float


def objective_grid(alphas: np.ndarray, sigmas: np.ndarray, distance: float) -> np.ndarray:
    """``a^2 distance^2 / sigma^2`` on the (a, sigma) grid, (len(alphas), len(sigmas));
    0 wherever ``a`` is 0."""
    a = np.asarray(alphas, dtype=np.float64)[:, None]
    s = np.asarray(sigmas, dtype=np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        grid = a**2 * distance**2 / s**2
    return np.where(a == 0.0, 0.0, grid)


def smallest_feasible(
    alphas: np.ndarray,
    sigmas: np.ndarray,
    objective: np.ndarray,
    satisfied: np.ndarray,
    *,
    noiseless_start: bool,
) -> Criticality:
    """The smallest ``objective[p, s]`` among the grid points that meet the constraint
    (``satisfied``), the first in (a, sigma) order on ties; 0 at ``a = 0, sigma = 0`` when
    ``noiseless_start`` (the group at its initial weights meets it without noise); infinite
    when nothing does."""
    if noiseless_start:
        return Criticality(0.0, 0.0, 0.0)
    if not satisfied.any():
        return Criticality(float("inf"), float("nan"), float("nan"))
    masked = np.where(satisfied, objective, np.inf)
    p, s = np.unravel_index(int(np.argmin(masked)), masked.shape)
    return Criticality(float(masked[p, s]), float(alphas[p]), float(sigmas[s]))


@dataclass
class CriticalityResult:
    """Rewind curves, noisy grids and criticalities of layer groups: row ``g`` of every
    array is ``groups[g]``; ``whole_*`` is the whole model along the same line. Errors and
    losses are over ``examples`` training examples."""

    label: str
    init_label: str
    groups: list[str]
    parameters: np.ndarray
    distance: np.ndarray
    weight_rms: np.ndarray
    alphas: np.ndarray
    sigmas: np.ndarray
    curve_error: np.ndarray
    curve_loss: np.ndarray
    whole_error: np.ndarray
    whole_loss: np.ndarray
    grid_error: np.ndarray
    epsilon: float
    draws: int
    examples: int
    bn_batches: int
    evaluations: int
    seconds: float

    @property
    def final_error(self) -> float:
        """The run's own training error: the whole model at ``a = 1``."""
        return float(self.whole_error[-1])

    @property
    def absolute_sigmas(self) -> np.ndarray:
        """(G, S): each group's sigmas in weight units."""
        return self.weight_rms[:, None] * self.sigmas[None, :]

    @property
    def objective(self) -> np.ndarray:
        """(G, P, S): ``a^2 ||theta_i^F - theta_i^0||^2 / sigma^2`` at every grid point."""
        return np.stack(
            [
                objective_grid(self.alphas, sigmas, distance)
                for sigmas, distance in zip(self.absolute_sigmas, self.distance)
            ]
        )

    def within(self, errors: np.ndarray) -> np.ndarray:
        """Where ``errors`` stay within ``epsilon`` of the run's own training error."""
        return errors <= self.final_error + self.epsilon + ROUNDING

    @property
    def satisfied(self) -> np.ndarray:
        """(G, P, S): the grid points whose mean noisy error meets the constraint."""
        return self.within(self.grid_error)

    @property
    def criticalities(self) -> list[Criticality]:
        objective, satisfied = self.objective, self.satisfied
        starts = self.within(self.curve_error[:, 0])
        return [
            smallest_feasible(
                self.alphas, sigmas, objective[g], satisfied[g], noiseless_start=bool(starts[g])
            )
            for g, sigmas in enumerate(self.absolute_sigmas)
        ]

    def most_critical(self) -> tuple[str, float]:
        """The group of largest criticality and its value; ``("", 0.0)`` when no group is
        critical (every one rewinds to theta^0 within epsilon), ``("", nan)`` with none."""
        values = [c.value for c in self.criticalities]
        if not values:
            return "", float("nan")
        g = int(np.argmax(values))
        if values[g] == 0.0:
            return "", 0.0
        return self.groups[g], values[g]

    def summary(self) -> dict[str, Any]:
        name, value = self.most_critical()
        return {
            "examples": self.examples,
            "final_error": self.final_error,
            "final_loss": float(self.whole_loss[-1]),
            "initial_error": float(self.whole_error[0]),
            "initial_loss": float(self.whole_loss[0]),
            "most_critical": name,
            "max_criticality": value,
            "critical_groups": sum(c.value > 0 for c in self.criticalities),
            "evaluations": self.evaluations,
            "seconds": self.seconds,
        }

    def datasets(self) -> dict[str, Any]:
        found = self.criticalities
        return {
            "alphas": self.alphas,
            "sigmas": self.sigmas,
            "groups/names": self.groups,
            "groups/parameters": self.parameters,
            "groups/distance": self.distance,
            "groups/weight_rms": self.weight_rms,
            "groups/criticality": np.array([c.value for c in found]),
            "groups/best_alpha": np.array([c.alpha for c in found]),
            "groups/best_sigma": np.array([c.sigma for c in found]),
            "curves/error": self.curve_error,
            "curves/loss": self.curve_loss,
            "whole/error": self.whole_error,
            "whole/loss": self.whole_loss,
            "grid/sigma": self.absolute_sigmas,
            "grid/error": self.grid_error,
            "grid/objective": self.objective,
            "grid/satisfied": self.satisfied,
        }

    def table(self) -> str:
        n = self.bn_batches
        bn = f", BatchNorm re-estimated on {n} batch{'es' if n != 1 else ''}" if n else ""
        width = max(len("whole model"), *(len(g) for g in self.groups)) + 2
        lines = [
            f"module criticality of {self.label} against theta0 = {self.init_label}: training "
            f"error within {self.epsilon:g} of {self.final_error:.4f} on {self.examples} "
            f"examples{bn}; {self.draws} noise draw{'s' if self.draws != 1 else ''} at "
            f"sigma = {', '.join(f'{s:g}' for s in self.sigmas)} x each group's rms weight",
            f"{'group':<{width}s}{'parameters':>12s}{'|thF - th0|':>13s}{'criticality':>13s}"
            f"{'at a':>7s}{'sigma':>11s}{'sigma/rms':>11s}",
        ]
        rows = zip(self.groups, self.parameters, self.distance, self.weight_rms)
        largest = self.absolute_sigmas[:, -1]
        at_edge = False
        for g, ((name, count, distance, rms), found) in enumerate(zip(rows, self.criticalities)):
            relative = found.sigma / rms if rms > 0 else float("nan")
            edge = "*" if found.sigma == largest[g] else ""
            at_edge = at_edge or bool(edge)
            lines.append(
                f"{name:<{width}s}{int(count):>12,d}{distance:>13.4g}{found.value:>13.4g}"
                f"{found.alpha:>7.2f}{found.sigma:>11.3g}{relative:>11.3g}{edge}"
            )
        if at_edge:
            lines.append("* at the largest sigma of the grid: larger ones may find less")
        lines.append("training error with the group rewound to (1 - a) theta0 + a thetaF:")
        lines.append(f"{'a':<{width}s}" + "".join(f"{a:>7.2f}" for a in self.alphas))
        curves = [*zip(self.groups, self.curve_error), ("whole model", self.whole_error)]
        for name, errors in curves:
            lines.append(f"{name:<{width}s}" + "".join(f"{e:>7.3f}" for e in errors))
        name, value = self.most_critical()
        if name:
            lines.append(f"most critical: {name} ({value:.4g})")
        elif value == 0.0:
            lines.append(
                f"no group is critical: each rewinds to theta0 within {self.epsilon:g} of the "
                "training error"
            )
        lines.append(f"{self.evaluations} evaluations in {self.seconds:.1f} s")
        return "\n".join(lines)


def group_norms(final: State, initial: State, names: Sequence[str]) -> tuple[int, float, float]:
    """Over the tensors ``names``, in float64: their number of elements ``k``,
    ``||final - initial||`` and the root-mean-square final weight ``||final|| / sqrt(k)``."""
    size = sum(final[name].numel() for name in names)
    moved = squares = 0.0
    for name in names:
        weight = final[name].double()
        moved += float(((weight - initial[name].to(weight.device).double()) ** 2).sum())
        squares += float((weight**2).sum())
    return size, moved**0.5, (squares / max(size, 1)) ** 0.5


def noise_directions(
    targets: Sequence[torch.Tensor], draws: int, seed: int, index: int
) -> list[list[torch.Tensor]]:
    """``draws`` standard Gaussian tensors for each of ``targets``, shaped like them on
    their device, drawn on the CPU from a generator seeded by ``seed`` and the group's
    ``index`` (the same on every device and every process)."""
    state = np.random.SeedSequence([seed, index]).generate_state(1)[0]
    generator = torch.Generator().manual_seed(int(state))
    return [
        [torch.empty_like(t).copy_(torch.randn(t.shape, generator=generator)) for t in targets]
        for _ in range(draws)
    ]


class _Meter:
    """The barrier's measurement at the model's current weights, counted; the sums stay on
    the device."""

    def __init__(self, inputs: RunInputs) -> None:
        self.inputs = inputs
        self.count = 0

    def __call__(self) -> torch.Tensor:
        self.count += 1
        i = self.inputs
        return measure(i.model, i.data, i.prep, i.runtime, bn_data=i.bn_data)


@torch.no_grad()
def measure_criticality(
    inputs: RunInputs,
    init_state: State,
    options: CriticalityOptions = CriticalityOptions(),
    *,
    groups: Sequence[LayerGroup] | None = None,
    labels: tuple[str, str] = ("the model", "theta0"),
) -> CriticalityResult:
    """Rewind curves, noisy grids and criticalities of ``groups`` (default: every layer
    group) of ``inputs.model``, which holds the final weights, against ``init_state``
    (theta^0), with ``options``' grids, measured on ``inputs``; the model is left at its
    final weights. One host synchronisation at the end."""
    model = inputs.model
    groups = list(groups) if groups is not None else layer_groups(model)
    if not groups:
        raise ConfigError("module criticality needs at least one layer group to rewind")
    final_state = {name: t.detach().clone() for name, t in model.state_dict().items()}
    check_compatible([final_state, init_state], list(labels))
    alphas = np.linspace(0.0, 1.0, options.points)
    sigmas = np.asarray(options.sigmas, dtype=np.float64)
    device = inputs.runtime.device
    meter = _Meter(inputs)
    runtime = inputs.runtime
    runtime.synchronize()
    began = time.perf_counter()
    whole = torch.zeros(len(alphas), 2, dtype=torch.float64, device=device)
    line = Line(model, init_state, final_state)
    for p, alpha in enumerate(alphas):
        line.set(float(alpha))
        whole[p] = meter()
    curves = torch.zeros(len(groups), len(alphas), 2, dtype=torch.float64, device=device)
    noisy = torch.zeros(len(groups), len(alphas), len(sigmas), 2, dtype=torch.float64,
                        device=device)  # fmt: skip
    norms = np.array([group_norms(final_state, init_state, group.params) for group in groups])
    for g, group in enumerate(groups):
        moved = group_tensors(model, group)
        start = {**final_state, **{name: init_state[name] for name in moved}}
        line = Line(model, start, final_state)
        live = model.state_dict()
        targets = [live[name] for name in group.params]
        directions = noise_directions(targets, options.draws, options.probe.seed, group.index)
        for p, alpha in enumerate(alphas):
            line.set(float(alpha))
            curves[g, p] = meter()
            for s, sigma in enumerate(sigmas * norms[g, 2]):
                for direction in directions:
                    line.set(float(alpha))
                    torch._foreach_add_(targets, direction, alpha=float(sigma))
                    noisy[g, p, s] += meter()
    model.load_state_dict(final_state)
    runtime.synchronize()
    seconds = time.perf_counter() - began
    n = inputs.data.examples
    whole_host, curves_host = whole.cpu().numpy(), curves.cpu().numpy()
    noisy_host = noisy.cpu().numpy() / options.draws
    return CriticalityResult(
        label=labels[0],
        init_label=labels[1],
        groups=[group.name for group in groups],
        parameters=norms[:, 0].astype(np.int64),
        distance=norms[:, 1],
        weight_rms=norms[:, 2],
        alphas=alphas,
        sigmas=sigmas,
        curve_error=1.0 - curves_host[..., 1] / n,
        curve_loss=curves_host[..., 0] / n,
        whole_error=1.0 - whole_host[:, 1] / n,
        whole_loss=whole_host[:, 0] / n,
        grid_error=1.0 - noisy_host[..., 1] / n,
        epsilon=options.epsilon,
        draws=options.draws,
        examples=n,
        bn_batches=inputs.bn_batches,
        evaluations=meter.count,
        seconds=seconds,
    )


def fresh_head(init: LoadedRun) -> bool:
    """Whether ``init``'s weights carry a classifier drawn anew for its run: the init of a
    run that started from initial weights (``--init`` or ``--pretrained``) has the source's
    body and a new random head. Rewinding the head to it measures only that a classifier
    must be learnt, nothing about what was transferred."""
    model = init.config.model
    return init.weights.name == rundir.INIT and bool(model.init or model.pretrained)


def module_criticality(
    run: str | Path,
    *,
    init_ref: str | Path = "init",
    options: CriticalityOptions = CriticalityOptions(),
    out: str | Path | None = None,
    command: str | None = None,
) -> CriticalityResult:
    """Module criticality of every layer group of ``run`` (a run directory: its final
    weights, or a weights file of one) against ``init_ref`` (``init``: the run's own initial
    weights; or another run or weights file of the same architecture and head), on a
    seeded subset of the run's training split. The head group is left out when theta^0 has
    a freshly drawn head (``fresh_head``). Written to ``out`` (kind ``criticality``) when
    given."""
    runtime = options.runtime()
    final = load_run(run, device=runtime.device)
    init = load_run(init_ref, base=run)
    if runtime.channels_last:
        final.model.to(memory_format=torch.channels_last)
    groups = layer_groups(final.model)
    head = not fresh_head(init)
    measured = groups if head else groups[:-1]
    if not measured:
        raise ConfigError(f"{final.label} has no layer group but its head to measure")
    inputs = run_inputs(final, runtime, options.probe)
    result = measure_criticality(
        inputs,
        init.model.state_dict(),
        options,
        groups=measured,
        labels=(final.label, init.label),
    )
    if out is not None:
        write_result(
            Path(out),
            "criticality",
            result.datasets(),
            attrs={
                **inputs.provenance(final, options.probe.seed),
                **pair_attrs(final, init),
                "head": head,
                "points": options.points,
                "epsilon": options.epsilon,
                "draws": options.draws,
                "bn_batches": result.bn_batches,
            },
            summary=result.summary(),
            command=command,
        )
    return result
