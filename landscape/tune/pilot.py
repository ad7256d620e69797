"""Probe-guided advice: a short pilot of the recipe, explained on held-out images, sets the
non-binary options. The pilot is the recipe itself trained for a fraction of its epochs
(``PilotRules.fraction``); ``landscape.tune.explain`` then measures, per layer group, what
resetting it to its initial weights costs on the validation split (with its jackknife
error), its CKA to the initial features and its movement, and gives each group a status
(reused, adapted, rewritten, unclear). One rule per choice:

- **freeze**: the leading groups the pilot found *reused* (reset, they cost nothing on
  held-out images: the target does not need them changed) are frozen;
- **learning rate**: groups the pilot *needed* (adapted or rewritten) train at
  ``needed_lr`` times the base rate, so that they can move as far as the target asks;
  reused groups that are not frozen and unclear ones at the base rate; the new head as
  fast as the fastest body group;
- **transfer**: the trailing groups the pilot *rewrote* whose features kept a CKA with the
  initial ones below ``replaced_cka`` are re-initialised (their pre-trained weights were
  being replaced anyway); the others keep their initial weights.

Where the validation split is too small to tell (a group *unclear*, or no error at all with
one batch of images), the rules keep the binary default for that group: transferred,
trainable, at the base rate. The pilot costs ``fraction`` of a fine-tuning, the final run
one: at the default fraction 1.33 fine-tunings in all."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from finetune.config import RunConfig, flat_options
from finetune.executors import PlannedRun, train_once
from finetune.rundir import atomic_write
from landscape.tune.advisor import Choice, options_toml
from landscape.tune.explain import Explanation, explain_runs
from landscape.tune.options import ExplainOptions

NEEDED = ("adapted", "rewritten")


@dataclass(frozen=True)
class PilotRules:
    """The pilot's length and the constants of the rules (see the module docstring).
    ``needed_lr`` is the fit advisor's rate for groups that must move
    (``landscape.tune.advisor.FitRules.shifted_lr``)."""

    fraction: float = 1 / 3
    needed_lr: float = 5.0
    replaced_cka: float = 0.5


@dataclass
class PilotAdvice:
    """The advised options (flat ``landscape finetune`` values), the choice behind each,
    the pilot's explanation they were read from, and the pilot run."""

    values: dict[str, Any]
    choices: list[Choice]
    explanation: Explanation
    pilot: Path
    cost: float
    seconds: float = 0.0

    def toml(self) -> str:
        header = (
            f"written by `landscape advise --pilot` from the probes of a pilot run "
            f"({self.pilot}) on its validation images"
        )
        return options_toml(header, self.values, self.choices)

    def table(self) -> str:
        """The pilot's per-group probes, then each advised option with its rule."""
        lines = [self.explanation.table(), "", "advice:"]
        for c in self.choices:
            lines += [f"  {c.flag} = {c.value}", f"      {c.rule}"]
        lines.append(f"  cost: {self.cost:.2f} fine-tunings (the pilot and the advised run)")
        return "\n".join(lines)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write(path, lambda tmp: tmp.write_text(self.toml()))
        return path


def pilot_config(config: RunConfig, fraction: float) -> RunConfig:
    """The recipe ``config`` trained for ``fraction`` of its epochs (at least one), its
    schedule over those epochs, evaluated only at its end."""
    epochs = max(1, round(fraction * config.train.epochs))
    return replace(config, train=replace(config.train, epochs=epochs, eval_every=epochs,
                                         keep_every=0))  # fmt: skip


def choose_from_pilot(
    e: Explanation, base: dict[str, Any], rules: PilotRules = PilotRules()
) -> tuple[dict[str, Any], list[Choice]]:
    """The advised options: ``base`` (the recipe's flat options) with freezing, transferred
    groups and per-group learning-rate multipliers set by the rules from the pilot's
    explanation ``e``."""
    status, groups = e.status, e.groups
    body = len(groups) - 1
    numbers = {g: _numbers(e, g) for g in range(len(groups))}

    frozen = 0
    while frozen < body and status[frozen] == "reused":
        frozen += 1
    freeze_rule = (
        f"freeze: the leading reused groups ({'; '.join(numbers[g] for g in range(frozen))})"
        if frozen
        else f"freeze: nothing; the first group is {status[0]} ({numbers[0]})"
    )

    def replaced(g: int) -> bool:
        return status[g] == "rewritten" and e.cka.value[g] < rules.replaced_cka

    kept = body
    while kept > 1 and replaced(kept - 1):
        kept -= 1
    transfer_rule = (
        f"transfer: the first {kept} groups; the groups above were rewritten with CKA to init "
        f"below {rules.replaced_cka} ({'; '.join(numbers[g] for g in range(kept, body))}), so "
        "they are re-initialised"
        if kept < body
        else "transfer: every group keeps its initial weights (the head is new)"
    )

    multipliers = [rules.needed_lr if status[g] in NEEDED or g >= kept else 1.0
                   for g in range(body)]  # fmt: skip
    multipliers.append(max(multipliers))
    needed = [g for g in range(body) if status[g] in NEEDED]
    lr_rule = (
        f"learning rate: x{rules.needed_lr:g} on the groups the pilot needed ("
        + "; ".join(numbers[g] for g in needed)
        + "), x1 on the others; the new head as fast as the fastest group"
        if needed
        else "learning rate: x1 everywhere; the pilot needed no group beyond its error"
    )
    choices = [Choice("freeze_groups", frozen, freeze_rule)]
    if kept < body:
        choices.append(Choice("transfer_groups", kept, transfer_rule))
    choices.append(Choice("lr_mult", multipliers, lr_rule))
    values = {k: v for k, v in base.items() if k not in ("lr_decay", "transfer_groups")}
    values.update({c.flag: c.value for c in choices})
    return values, choices


def advise_from_pilot(
    config: RunConfig,
    *,
    rules: PilotRules = PilotRules(),
    options: ExplainOptions = ExplainOptions(split="val", examples=None),
    runs_dir: str | Path = Path("results/pilots"),
    out: str | Path | None = None,
    explain_out: str | Path | None = None,
) -> PilotAdvice:
    """Train the pilot of ``config`` (``pilot_config``) into ``runs_dir`` (reused when
    there), explain it on ``options``' images (default: the whole validation split), and
    advise; the advice is written to ``out`` (TOML) and the pilot's explanation to
    ``explain_out`` (kind ``explain``) when given."""
    started = time.perf_counter()
    pilot = pilot_config(config, rules.fraction)
    run = Path(runs_dir) / f"pilot-{pilot.hash()[:12]}"
    train_once(PlannedRun(pilot, run))
    explanation = explain_runs([run], options=options, out=explain_out)
    values, choices = choose_from_pilot(explanation, flat_options(config), rules)
    advice = PilotAdvice(
        values=values,
        choices=choices,
        explanation=explanation,
        pilot=run,
        cost=pilot.train.epochs / config.train.epochs + 1.0,
        seconds=time.perf_counter() - started,
    )
    if out is not None:
        advice.write(out)
    return advice


def _numbers(e: Explanation, g: int) -> str:
    """A group's status and the numbers it was read from."""
    return (
        f"{e.groups[g]} {e.status[g]}: reset costs {100 * e.rewind_error.value[g]:+.1f} ± "
        f"{100 * e.rewind_error.se[g]:.1f} points, CKA to init {e.cka.value[g]:.2f}"
    )
