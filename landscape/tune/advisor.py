"""The advisor: turns the fit measures of a model's initial weights on a target
(``probes.fit``) into a fine-tuning configuration, one rule per choice, each rule written
down with the measures it reads and their standard errors; docs/guide/tuning.md ("The
advisor") gives the sweep evidence behind each rule and where it is weak.

Every measure carries a standard error (the fit's cross-validation and jackknife), and a
rule acts only on a difference larger than that error; where the data cannot tell, the
advice keeps the binary default (transfer, train, base rate) and says so. A body layer group
*fits* the target when its BatchNorm layers see the target's inputs with statistics close to
their running (source) statistics: mean symmetric KL plus its error below
``FitRules.fit_shift``; it is *shifted* when the distance minus its error is above, *unclear*
otherwise. Groups without BatchNorm (ViTs, ConvNeXts) are judged the same way by how far
their linear-probe accuracy falls below the best group's, against ``FitRules.probe_margin``.
The images per class are counted in the data (the fewest of any class). The rules:

- **transfer**: the trailing groups that are shifted and whose linear probe is not better
  than the group below's by more than the paired error are re-initialised (they hold
  source-specific features); the others keep their initial weights;
- **freeze**: with scarce data (at most ``FitRules.scarce`` images per class), the leading
  groups that fit are frozen, all but the last ``FitRules.trainable`` transferred groups;
- **learning rate**: shifted groups (and re-initialised ones) train at ``FitRules.shifted_lr``
  times the base rate (their weights must move far); groups that fit at ``FitRules.ample_lr``
  with ample data, and with scarce data at ``FitRules.fit_decay ** d`` for the d-th fitting
  group below the top one (layer-wise decay: the lower, the more general); unclear groups
  at the base rate; the new head at ``FitRules.head_lr``, or as fast as the fastest body group;
- **regulariser**: transferred groups get a light pull toward their initial weights
  (L2-SP ``FitRules.l2sp``) and no L2; the new head and re-initialised groups plain L2
  (``FitRules.l2``)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from finetune.config import RunConfig, flat_options
from finetune.rundir import atomic_write
from probes.cross_validation import DEFAULT_FOLDS
from probes.fit import FitResult, fit_measures
from probes.options import ProbeOptions
from probes.statistics import plus_minus

ALL = "all"  # the value of transfer_groups that is the default: nothing re-initialised


@dataclass(frozen=True)
class FitRules:
    """The thresholds and strengths of the advisor's rules (see the module docstring)."""

    fit_shift: float = 0.1
    probe_margin: float = 0.1
    scarce: int = 20
    trainable: int = 3
    shifted_lr: float = 5.0
    fit_decay: float = 0.5
    ample_lr: float = 3.0
    head_lr: float = 3.0
    l2sp: float = 0.01
    l2: float = 5e-4


@dataclass(frozen=True)
class Choice:
    """One advised option, the rule it came from and the measures that rule read."""

    flag: str
    value: Any
    rule: str


@dataclass
class Advice:
    """An advised configuration: flat ``landscape finetune`` options (``values``) with the
    choice behind each advised one, the fit measures it was derived from, each body group's
    status (fits, shifted, unclear) and what the data could not decide (``notes``)."""

    fit: FitResult
    values: dict[str, Any]
    choices: list[Choice]
    seconds: float = 0.0
    status: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def toml(self) -> str:
        """The options as a TOML file ``landscape finetune --config`` runs as it is, each
        advised one preceded by its rule as a comment."""
        header = (
            f"written by `landscape advise` from the fit measures of {self.fit.model} "
            f"({self.fit.init}) on {self.fit.data}"
        )
        return options_toml(header, self.values, self.choices)

    def table(self, explain: bool = False) -> str:
        """The fit measures, the advice with the rule and measures behind each choice, and
        what the data could not decide; with ``explain``, per group the fit against depth."""
        lines = [self.fit.table(), ""]
        if explain:
            lines += [self.explanation(), ""]
        lines.append("advice:")
        for c in self.choices:
            lines.append(f"  {c.flag} = {toml_value(c.value)}")
            lines.append(f"      {c.rule}")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def explanation(self) -> str:
        """Per body group, input to output: its linear-probe accuracy as a bar (the shaded
        part is ± one standard error), the gain over the group below with its paired error,
        the BN shift with its error, and the status the rules read from them."""
        fit, width = self.fit, 30
        lines = [
            "fit against depth (linear probe, cross-validated; ░ = ± 1 standard error):",
            f"  {'group':<14s}{'linear probe':<{width + 2}s}{'acc':>15s}{'gain':>17s}"
            f"{'BN shift':>20s}  status",
        ]
        for g, name in enumerate(fit.groups):
            acc, error = float(fit.linear_acc[g]), float(fit.linear_se[g])
            low, high = round(width * max(acc - error, 0.0)), round(width * min(acc + error, 1.0))
            bar = ("█" * low + "░" * (high - low)).ljust(width)
            gain = plus_minus(*fit.probe_difference(g, g - 1), "+.3f", ".3f") if g else ""
            shift = plus_minus(fit.bn_distance[g], fit.bn_se[g], ".3g", ".2g")
            lines.append(
                f"  {name:<14s}|{bar}|{plus_minus(acc, error):>15s}{gain:>17s}{shift:>20s}  "
                f"{self.status[g]}"
            )
        return "\n".join(lines)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write(path, lambda tmp: tmp.write_text(self.toml()))
        return path


FITS, SHIFTED, UNCLEAR = "fits", "shifted", "unclear"


def group_status(fit: FitResult, rules: FitRules) -> list[str]:
    """Whether each body group fits the target, is shifted from it, or the data cannot
    tell (see the module docstring)."""
    best = int(np.argmax(fit.linear_acc))
    status = []
    for g, (shift, error) in enumerate(zip(fit.bn_distance, fit.bn_se)):
        if math.isnan(shift):
            gap, error = fit.probe_difference(best, g)
            shift, threshold = gap, rules.probe_margin
        else:
            threshold = rules.fit_shift
        if shift + error < threshold:
            status.append(FITS)
        elif shift - error > threshold:
            status.append(SHIFTED)
        else:
            status.append(UNCLEAR)
    return status


def advise(fit: FitResult, base: dict[str, Any], *, rules: FitRules = FitRules()) -> Advice:
    """The advised configuration: ``base`` (the run's own options: model, init, data,
    epochs, lr, ...) with the non-binary options set by the rules from ``fit``."""
    status = group_status(fit, rules)
    body = len(status)
    per_class = fit.train_per_class
    notes = []

    kept = body
    while kept > 1 and status[kept - 1] == SHIFTED and not _improves(fit, kept - 1):
        kept -= 1
    transfer = ALL if kept == body else kept
    rule = (
        "transfer: every group keeps its initial weights (the head is new); "
        + _reinit_evidence(fit, status)
        if kept == body
        else f"transfer: the first {kept} groups; the groups above are shifted "
        f"({_shifts(fit, range(kept, body))}) and their linear probe does not beat the group "
        f"below by more than its error ({_steps(fit, range(kept, body))}), so they are "
        "re-initialised"
    )
    choices = [Choice("transfer_groups", transfer, rule)]

    scarce = per_class <= rules.scarce
    leading = next((i for i, s in enumerate(status[:kept]) if s != FITS), kept)
    frozen = min(leading, max(kept - rules.trainable, 0)) if scarce else 0
    rule = (
        f"freeze: {per_class} images per class <= {rules.scarce}; the first {leading} "
        f"group(s) fit (BN shift + error < {rules.fit_shift}: "
        f"{_shifts(fit, range(min(leading + 1, body)))}); the top {rules.trainable} "
        "transferred groups stay trainable"
        if scarce
        else f"freeze: nothing; {per_class} images per class > {rules.scarce}"
    )
    choices.append(Choice("freeze_groups", frozen, rule))

    multipliers, depth = [], 0
    for i in reversed(range(body)):
        if status[i] == FITS and i < kept:
            multipliers.append(rules.fit_decay**depth if scarce else rules.ample_lr)
            depth += 1
        elif status[i] == UNCLEAR and i < kept:
            multipliers.append(1.0)
        else:
            multipliers.append(rules.shifted_lr)
    multipliers = multipliers[::-1]
    multipliers.append(max([rules.head_lr, *multipliers]))
    choices.append(
        Choice(
            "lr_mult",
            multipliers,
            f"learning rate: x{rules.shifted_lr} on shifted or new groups, x1 on unclear "
            f"ones ({_shifts(fit, range(body))}: {', '.join(status)}); on those that fit "
            + (
                f"x{rules.fit_decay}^d, d below the top one (scarce data)"
                if scarce
                else f"x{rules.ample_lr} (ample data)"
            )
            + f"; the new head x{rules.head_lr} or as fast as the fastest group",
        )
    )
    transferred = [i < kept for i in range(body)] + [False]
    choices.append(
        Choice(
            "l2sp",
            [rules.l2sp if t else 0.0 for t in transferred],
            f"regulariser: light L2-SP ({rules.l2sp}) toward w0 on the transferred groups",
        )
    )
    choices.append(
        Choice(
            "l2",
            [0.0 if t else rules.l2 for t in transferred],
            f"regulariser: plain L2 {rules.l2} on the new head and the re-initialised groups",
        )
    )
    if UNCLEAR in status:
        unclear = [fit.groups[g] for g, s in enumerate(status) if s == UNCLEAR]
        notes.append(
            f"the data cannot tell whether these groups fit: {', '.join(unclear)} (the error "
            "of the BN shift, or without BatchNorm of the probe's gap to the best group, spans "
            "the threshold); treated as the binary default (transferred, trainable, base rate)"
        )
    if body > 1 and not any(_separable(fit, g) for g in range(1, body)):
        notes.append(
            "the data cannot separate the groups by linear probe: no group differs from the "
            "one below by more than the paired error"
        )
    values = {k: v for k, v in base.items() if k not in ("lr_decay", "preset")}
    values.pop("transfer_groups", None)
    values.update({c.flag: c.value for c in choices if c.value is not ALL})
    return Advice(fit, values, choices, status=status, notes=notes)


def _improves(fit: FitResult, g: int) -> bool:
    """Group ``g``'s linear probe beats group ``g - 1``'s by more than the paired error."""
    difference, error = fit.probe_difference(g, g - 1)
    return difference > error


def _separable(fit: FitResult, g: int) -> bool:
    """Groups ``g`` and ``g - 1`` differ by linear probe by more than the paired error."""
    difference, error = fit.probe_difference(g, g - 1)
    return abs(difference) > error


def _shifts(fit: FitResult, groups: range) -> str:
    return ", ".join(plus_minus(fit.bn_distance[g], fit.bn_se[g], ".3g", ".2g") for g in groups)


def _steps(fit: FitResult, groups: range) -> str:
    """Each group's linear-probe gain over the group below, ± the paired error."""
    return ", ".join(plus_minus(*fit.probe_difference(g, g - 1), "+.3f", ".3f") for g in groups)


def _reinit_evidence(fit: FitResult, status: list[str]) -> str:
    """Why no trailing group is re-initialised, in the measures the rule read."""
    top = len(status) - 1
    if top == 0:
        return "the model has one body group, which is always kept"
    if status[top] != SHIFTED:
        return f"the top group is not shifted (BN shift {_shifts(fit, range(top, top + 1))})"
    return (
        "the top group is shifted but its linear probe beats the group below's by more than "
        f"the error ({_steps(fit, range(top, top + 1))})"
    )


def advise_run(
    config: RunConfig,
    *,
    k: int = 10,
    folds: int = DEFAULT_FOLDS,
    options: ProbeOptions | None = None,
    rules: FitRules = FitRules(),
    out: str | Path | None = None,
    fit_out: str | Path | None = None,
) -> Advice:
    """Measure the fit of ``config``'s model and initial weights on its data (``k`` kNN
    neighbours, ``folds`` cross-validation folds; ``options`` default: all examples, on
    ``config``'s device and precision), advise (the other options as ``config`` has them),
    and write the advice to ``out`` (TOML) and the measures to ``fit_out`` (kind ``fit``)."""
    start = time.perf_counter()
    if options is None:
        options = ProbeOptions(device=config.train.device, precision=config.train.precision)
    fit = fit_measures(config.model, config.data, k=k, folds=folds, options=options, out=fit_out)
    base = flat_options(config)
    advice = advise(fit, base, rules=rules)
    advice.seconds = time.perf_counter() - start
    if out is not None:
        advice.write(out)
    return advice


def options_toml(header: str, values: dict[str, Any], choices: list[Choice]) -> str:
    """Flat options as a TOML file ``landscape finetune --config`` runs as it is: a
    ``header`` comment, then each option, an advised one preceded by its rule."""
    reasons = {c.flag: c.rule for c in choices}
    lines = [f"# {header}"]
    for key, value in values.items():
        if key in reasons:
            lines.append(f"# {reasons[key]}")
        lines.append(f"{key.replace('_', '-')} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def toml_value(value: Any) -> str:
    """``value`` (bool, number, string or list of them) written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
