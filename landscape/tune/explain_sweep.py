"""``landscape explain --sweep DIR``: why the best trials of a sweep won, as a chain from
the options through what they did to the network to the validation objective.

1. **Importance** of each searched option for the objective, by Optuna's own evaluators
   (fANOVA over a random forest, Hutter et al. 2014, when scikit-learn is installed; else
   PED-ANOVA), over the complete trials.
2. **Probes** (``probes.change``: CKA to init, movement, rewind cost per layer group) of a
   budgeted subset of trials: the top and the bottom ``share`` of the complete trials by
   objective.
3. For each probe and group, its rank correlation with the objective across the probed
   trials, with a bootstrap interval over trials (``probes.statistics.rank_correlation``).
4. For each of the most important options, the probe and group it moves most (the largest
   rank correlation between the option's value and the probe across the probed trials);
   the chain is *option -> probe of group g -> objective*, each link with its interval. A
   link whose interval includes 0 is said to be undetermined at this number of trials.

Only complete trials are read, so a sweep that was killed and resumed is explained as it
stands."""

from __future__ import annotations

import importlib.util
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from finetune.errors import ConfigError
from finetune.result_files import write_result
from landscape.tune.options import ExplainOptions
from landscape.tune.sweep import (
    DEFAULT_OUT,
    SweepReport,
    SweepTrial,
    default_storage,
    load_study,
    open_storage,
    sweep_report,
)
from probes.change import GroupChange, group_change
from probes.statistics import RankCorrelation, rank_correlation

PROBES = ("cka", "movement", "rewind_error")
PROBE_NAMES = {"cka": "CKA to init", "movement": "movement", "rewind_error": "rewind cost"}
EVALUATORS = ("auto", "fanova", "ped-anova")
IMPORTANT = 3  # options followed down the chain, the most important first


@dataclass
class Link:
    """One link of a chain: a rank correlation and what it joins."""

    source: str
    target: str
    correlation: RankCorrelation


@dataclass
class SweepExplanation:
    """The importances, the probed trials' per-group probes, each (probe, group)'s rank
    correlation with the objective, and a chain per important option."""

    study: str
    evaluator: str
    importance: dict[str, float]
    trials: list[SweepTrial]
    changes: list[GroupChange]
    groups: list[str]
    with_objective: dict[str, list[RankCorrelation]]
    chains: list[tuple[str, Link, Link]]
    complete: int
    seconds: float = 0.0
    sentences: list[str] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"study {self.study}: {self.complete} complete trials, {len(self.trials)} probed "
                 f"(the top and bottom by objective); importance by {self.evaluator}:"]  # fmt: skip
        for name, value in self.importance.items():
            lines.append(f"  {name:<24s}{value:6.3f}  {'#' * round(40 * value)}")
        lines.append("rank correlation of each probe with the objective (95% bootstrap interval):")
        lines.append(f"  {'group':<12s}" + "".join(f"{PROBE_NAMES[p]:>26s}" for p in PROBES))
        for g, name in enumerate(self.groups):
            lines.append(f"  {name:<12s}" + "".join(
                f"{_interval(self.with_objective[p][g]):>26s}" for p in PROBES))  # fmt: skip
        return "\n".join([*lines, "", *self.sentences])


def explain_sweep(
    out: str | Path = DEFAULT_OUT,
    *,
    storage: str | None = None,
    study: str | None = None,
    share: float = 0.25,
    evaluator: str = "auto",
    options: ExplainOptions = ExplainOptions(),
    seed: int = 0,
    result: str | Path | None = None,
    command: str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> SweepExplanation:
    """Explain the sweep in ``out`` (its study ``study`` in ``storage``; default: the only
    study there): the importance of
    every option by ``evaluator``, the probes of the top and bottom ``share`` of its
    complete trials (at least one each) measured where ``options`` says, their rank
    correlations with the objective and with the important options; written to ``result``
    (kind ``explain_sweep``) when given."""
    if not 0.0 < share <= 0.5:
        raise ConfigError(f"--probe-share must lie in (0, 0.5], got {share}")
    chosen = _evaluator(evaluator, seed)
    started = time.perf_counter()
    study = study or only_study(out, storage)
    found = load_study(out, storage, study)
    report = sweep_report(out=out, storage=storage, study=study)
    complete = sorted((t for t in report.trials if t.value is not None),
                      key=lambda t: (-t.value, t.number))  # fmt: skip
    if not complete:
        raise ConfigError(
            f"--sweep {out}: study {study} has no complete trial yet, nothing to explain"
        )
    importance = _importance(found, chosen) if len(complete) > 1 else {}
    count = max(1, math.floor(share * len(complete)))
    probed = complete[:count] + [t for t in complete[-count:] if t not in complete[:count]]
    changes = []
    for trial in probed:
        log(f"probing trial {trial.number} ({trial.run})")
        changes.append(group_change(trial.run, options=options))
    groups = changes[0].groups
    objective = np.array([t.value for t in probed])
    values = {p: np.stack([getattr(c, p) for c in changes]) for p in PROBES}
    with_objective = {
        p: [rank_correlation(values[p][:, g], objective, seed=seed) for g in range(len(groups))]
        for p in PROBES
    }
    chains = _chains(report, importance, probed, values, with_objective, groups, seed)
    explanation = SweepExplanation(
        study=study,
        evaluator=type(chosen).__name__,
        importance=importance,
        trials=probed,
        changes=changes,
        groups=groups,
        with_objective=with_objective,
        chains=chains,
        complete=len(complete),
        seconds=time.perf_counter() - started,
    )
    explanation.sentences = _sentences(explanation)
    if result is not None:
        _write(Path(result), explanation, values, report, options, command)
    return explanation


def only_study(out: str | Path, storage: str | None) -> str:
    """The name of the one study in the sweep's storage (``--study`` when there are more)."""
    if storage is None and not (Path(out) / "study.db").exists():
        raise ConfigError(f"no sweep in {out} (no study.db); give the sweep's folder or --storage")
    names = optuna.get_all_study_names(open_storage(storage or default_storage(out)))
    if len(names) != 1:
        raise ConfigError(
            f"{out} holds {len(names)} studies ({', '.join(names) or 'none'}); give --study"
        )
    return names[0]


def _evaluator(name: str, seed: int) -> optuna.importance.BaseImportanceEvaluator:
    """Optuna's evaluator: fANOVA (needs scikit-learn) or PED-ANOVA; ``auto`` takes fANOVA
    when scikit-learn is installed."""
    if name not in EVALUATORS:
        raise ConfigError(f"--importance must be one of {', '.join(EVALUATORS)}, got {name!r}")
    has_sklearn = importlib.util.find_spec("sklearn") is not None
    if name == "fanova" and not has_sklearn:
        raise ConfigError('--importance fanova needs scikit-learn: pip install "landscape[digits]"')
    if name == "fanova" or (name == "auto" and has_sklearn):
        return optuna.importance.FanovaImportanceEvaluator(seed=seed)
    return optuna.importance.PedAnovaImportanceEvaluator()


def _importance(
    study: optuna.Study, evaluator: optuna.importance.BaseImportanceEvaluator
) -> dict[str, float]:
    """Each option's importance for the objective over the complete trials (the options
    every complete trial drew; normalised to sum to 1), most important first."""
    try:
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (RuntimeError, ValueError):  # too few trials, or no option common to them
        return {}


def option_values(trial: SweepTrial, name: str) -> float:
    """An option's value in a trial as a number: an ``:off`` switch as 0/1, a searched
    value (0 where its switch is on), NaN for a choice of strings or an undrawn value."""
    if name.endswith(":off"):
        return float(bool(trial.params.get(name)))
    value = trial.effective(name)
    return float(value) if isinstance(value, (int, float)) else math.nan


def _chains(
    report: SweepReport,
    importance: dict[str, float],
    probed: list[SweepTrial],
    values: dict[str, np.ndarray],
    with_objective: dict[str, list[RankCorrelation]],
    groups: list[str],
    seed: int,
) -> list[tuple[str, Link, Link]]:
    """For each of the IMPORTANT most important options, the (probe, group) whose rank
    correlation with the option is the largest in size: option -> probe -> objective."""
    chains = []
    for name in list(importance)[:IMPORTANT]:
        x = np.array([option_values(t, name) for t in probed])
        moved = [
            (rank_correlation(x, values[p][:, g], seed=seed), p, g)
            for p in PROBES
            for g in range(len(groups))
        ]
        moved = [m for m in moved if not math.isnan(m[0].rho)]
        if not moved:
            continue
        r, p, g = max(moved, key=lambda m: abs(m[0].rho))
        probe = f"{PROBE_NAMES[p]} of {groups[g]}"
        chains.append((name, Link(name, probe, r), Link(probe, "objective", with_objective[p][g])))
    return chains


def _sentences(e: SweepExplanation) -> list[str]:
    if not e.importance:
        lines = ["importance: too few complete trials, or no option drawn by all of them"]
    else:
        top = ", ".join(f"{n} {v:.2f}" for n, v in list(e.importance.items())[:IMPORTANT])
        lines = [f"most important options ({e.evaluator}): {top}"]
    for name, to_probe, to_objective in e.chains:
        lines.append(
            f"{name} -> {to_probe.target} ({_link(to_probe.correlation)}) -> objective "
            f"({_link(to_objective.correlation)})"
        )
    n = len(e.trials)
    links = [link for _, a, b in e.chains for link in (a, b)]
    if links and not any(link.correlation.excludes_zero for link in links):
        lines.append(f"no link's interval excludes 0 with {n} probed trials: more trials, or a "
                     "larger --probe-share, could tell")  # fmt: skip
    return lines


def _link(r: RankCorrelation) -> str:
    sign = "undetermined, " if not r.excludes_zero else ""
    return f"{sign}rho {r.rho:+.2f} [{r.low:+.2f}, {r.high:+.2f}]"


def _interval(r: RankCorrelation) -> str:
    if math.isnan(r.rho):
        return "-"
    return f"{r.rho:+.2f} [{r.low:+.2f}, {r.high:+.2f}]"


def _write(
    path: Path,
    e: SweepExplanation,
    values: dict[str, np.ndarray],
    report: SweepReport,
    options: ExplainOptions,
    command: str | None,
) -> None:
    datasets: dict[str, Any] = {
        "groups/names": e.groups,
        "trials/number": np.array([t.number for t in e.trials], dtype=np.int64),
        "trials/value": np.array([t.value for t in e.trials]),
        "trials/run": [t.run for t in e.trials],
        "trials/params": [json.dumps(t.params, sort_keys=True) for t in e.trials],
        "sentences": e.sentences,
    }
    for p in PROBES:
        datasets[f"probes/{p}"] = values[p]
        for part in ("rho", "low", "high"):
            datasets[f"objective/{p}_{part}"] = np.array(
                [getattr(r, part) for r in e.with_objective[p]])  # fmt: skip
    if e.importance:
        datasets["importance/names"] = list(e.importance)
        datasets["importance/values"] = np.array(list(e.importance.values()))
    write_result(
        path,
        "explain_sweep",
        datasets,
        attrs={
            "study": e.study,
            "storage": report.storage,
            "evaluator": e.evaluator,
            "data": e.changes[0].data,
            "split": e.changes[0].split,
            "examples": e.changes[0].examples,
            "seed": options.seed,
        },
        summary={"complete": e.complete, "probed": len(e.trials), "seconds": e.seconds},
        command=command,
    )
