"""The advisor (issue 6): turns the fit measures of a model's initial weights on a target
(``probes.fit``) into a fine-tuning configuration, one rule per choice, each rule written
down with the measure it reads; the README ("The advisor") gives the sweep evidence behind
each rule and where it is weak.

A body layer group *fits* the target when its BatchNorm layers see the target's inputs with
statistics close to their running (source) statistics: mean symmetric KL below
``Rules.fit_shift``. Groups without BatchNorm (ViTs, ConvNeXts) fit when their
linear-probe accuracy is within ``Rules.probe_margin`` of the best group's. The rules:

- **transfer**: the trailing groups that neither fit nor improve the linear probe over the
  group below are re-initialised (they hold source-specific features); the others keep
  their initial weights;
- **freeze**: with scarce data (at most ``Rules.scarce`` images per class), the leading
  groups that fit are frozen, all but the last ``Rules.trainable`` body groups;
- **learning rate**: groups that do not fit (and re-initialised ones) train at
  ``Rules.shifted_lr`` times the base rate (their weights must move far); groups that fit
  at ``Rules.ample_lr`` with ample data, and with scarce data at ``Rules.fit_decay ** d``
  for the d-th fitting group below the top one (layer-wise decay: the lower, the more
  general); the new head at ``Rules.head_lr``, or as fast as the fastest body group;
- **regulariser**: transferred groups get a light pull toward their initial weights
  (L2-SP ``Rules.l2sp``) and no L2; the new head and re-initialised groups plain L2
  (``Rules.l2``)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from finetune.config import RunConfig, flat_options
from finetune.rundir import atomic_write
from probes.fit import FitResult, fit_measures
from probes.options import ProbeOptions

ALL = "all"  # the value of transfer_groups that is the default: nothing re-initialised


@dataclass(frozen=True)
class Rules:
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
    choice behind each advised one, and the fit measures it was derived from."""

    fit: FitResult
    values: dict[str, Any]
    choices: list[Choice]
    seconds: float = 0.0
    fits: list[bool] = field(default_factory=list)

    def toml(self) -> str:
        """The options as a TOML file ``landscape finetune --config`` runs as it is, each
        advised one preceded by its rule as a comment."""
        reasons = {c.flag: c.rule for c in self.choices}
        lines = [
            "# written by `landscape advise` from the fit measures of "
            f"{self.fit.model} ({self.fit.init}) on {self.fit.data}",
        ]
        for key, value in self.values.items():
            if key in reasons:
                lines.append(f"# {reasons[key]}")
            lines.append(f"{key.replace('_', '-')} = {toml_value(value)}")
        return "\n".join(lines) + "\n"

    def table(self) -> str:
        lines = [self.fit.table(), "", "advice:"]
        for c in self.choices:
            lines.append(f"  {c.flag} = {toml_value(c.value)}")
            lines.append(f"      {c.rule}")
        return "\n".join(lines)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write(path, lambda tmp: tmp.write_text(self.toml()))
        return path


def group_fits(fit: FitResult, rules: Rules) -> list[bool]:
    """Whether each body group fits the target (see the module docstring)."""
    best_probe = float(np.max(fit.linear_acc))
    fits = []
    for shift, probe in zip(fit.bn_distance, fit.linear_acc):
        if math.isnan(shift):
            fits.append(bool(probe >= best_probe - rules.probe_margin))
        else:
            fits.append(bool(shift < rules.fit_shift))
    return fits


def advise(
    fit: FitResult,
    base: dict[str, Any],
    *,
    train_per_class: int | None,
    rules: Rules = Rules(),
) -> Advice:
    """The advised configuration: ``base`` (the run's own options: model, init, data,
    epochs, lr, ...) with the non-binary options set by the rules from ``fit``."""
    fits = group_fits(fit, rules)
    body = len(fits)
    shifts = ", ".join(f"{d:.3g}" for d in fit.bn_distance)
    probes = ", ".join(f"{a:.3g}" for a in fit.linear_acc)

    kept = body
    while kept > 1 and not fits[kept - 1] and fit.linear_acc[kept - 1] <= fit.linear_acc[kept - 2]:
        kept -= 1
    transfer = ALL if kept == body else kept
    rule = (
        "transfer: every group keeps its initial weights (the head is new)"
        if kept == body
        else f"transfer: the first {kept} groups; above them no group fits (BN shift {shifts}) "
        f"or improves the linear probe ({probes}), so they are re-initialised"
    )
    choices = [Choice("transfer_groups", transfer, rule)]

    scarce = train_per_class is not None and train_per_class <= rules.scarce
    leading = next((i for i, f in enumerate(fits[:kept]) if not f), kept)
    frozen = min(leading, max(kept - rules.trainable, 0)) if scarce else 0
    rule = (
        f"freeze: {train_per_class} images per class <= {rules.scarce}; the first {leading} "
        f"group(s) fit (BN shift {shifts} < {rules.fit_shift}); the top {rules.trainable} "
        "transferred groups stay trainable"
        if scarce
        else f"freeze: nothing; {train_per_class or 'all'} images per class > {rules.scarce}"
    )
    choices.append(Choice("freeze_groups", frozen, rule))

    multipliers, depth = [], 0
    for i in reversed(range(body)):
        if fits[i] and i < kept:
            multipliers.append(rules.fit_decay**depth if scarce else rules.ample_lr)
            depth += 1
        else:
            multipliers.append(rules.shifted_lr)
    multipliers = multipliers[::-1]
    multipliers.append(max([rules.head_lr, *multipliers]))
    choices.append(
        Choice(
            "lr_mult",
            multipliers,
            f"learning rate: x{rules.shifted_lr} on groups that do not fit or are new (BN "
            f"shift >= {rules.fit_shift}: {shifts}); on those that fit "
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
    values = {k: v for k, v in base.items() if k not in ("lr_decay", "preset")}
    values.pop("transfer_groups", None)
    values.update({c.flag: c.value for c in choices if c.value is not ALL})
    return Advice(fit, values, choices, fits=fits)


def advise_run(
    config: RunConfig,
    *,
    k: int = 10,
    options: ProbeOptions | None = None,
    rules: Rules = Rules(),
    out: str | Path | None = None,
    fit_out: str | Path | None = None,
) -> Advice:
    """Measure the fit of ``config``'s model and initial weights on its data (``options``
    default: all examples, on ``config``'s device and precision), advise (the other options
    as ``config`` has them), and write the advice to ``out`` (TOML) and the measures to
    ``fit_out`` (kind ``fit``)."""
    start = time.perf_counter()
    if options is None:
        options = ProbeOptions(device=config.train.device, precision=config.train.precision)
    fit = fit_measures(config.model, config.data, k=k, options=options, out=fit_out)
    base = flat_options(config)
    advice = advise(fit, base, train_per_class=config.data.train_per_class, rules=rules)
    advice.seconds = time.perf_counter() - start
    if out is not None:
        advice.write(out)
    return advice


def toml_value(value: Any) -> str:
    """``value`` (bool, number, string or list of them) written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)
