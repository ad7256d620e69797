"""How ``landscape sweep`` runs a study: how many trials, where the study is stored, how
many workers, and how a trial is scored. Apart from the sweep, so that the command builds
its flags from these fields without importing Optuna."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from finetune.config import check_choices, option
from finetune.errors import ConfigError

DEFAULT_OUT = Path("results/sweep")
OBJECTIVES = ("auto", "split", "folds")


@dataclass(frozen=True)
class SweepOptions:
    """``trials`` None only reads a study (``sweep_report``); running one needs it. The
    objective's request (``objective``, ``splits``, ``folds``, ``resolution``; None: the
    study's, else 1, 5 and 0.02) is checked as a whole by ``choose_objective``."""

    trials: int | None = option(None, "finished (complete or pruned) trials the study should reach")
    storage: str | None = option(
        None,
        "an Optuna database URL shared by every worker (default: sqlite:///OUT/study.db; "
        "postgresql:// needs the postgres extra)",
    )
    study: str | None = option(None, "study name (default: the space file's name)")
    workers: int = option(1, "trials run in parallel on this machine")
    seed: int = option(0, "seed of the sampler (mixed with the worker and the trial count)")
    objective: str = option(
        "auto",
        "how a trial is scored: split (--splits split seeds), folds (--folds "
        "cross-validated folds of the training split, one run each), auto (split seeds when "
        "their standard error at 90% accuracy is at most --resolution, else folds when the "
        "dataset carves its validation split); a resumed study keeps its own",
        choices=OBJECTIVES,
    )
    splits: int | None = option(
        None,
        "runs per trial, with split seeds S, S+1, ...; the objective is their mean "
        "validation accuracy (default: 1, or the study's)",
    )
    folds: int | None = option(
        None,
        "folds of the cross-validation under --objective folds, one run each "
        "(default: 5, or the study's)",
    )
    resolution: float | None = option(
        None,
        "the smallest difference of validation accuracy the search must rank "
        "(default: 0.02, or the study's)",
    )
    prune: bool = option(
        True, "stop trials whose epochs (of their first run) fall below the median"
    )
    heartbeat: int = option(
        10, "seconds between a trial's heartbeats; a trial silent for twice as long is retried"
    )

    def __post_init__(self) -> None:
        check_choices(self)
        if (self.trials is not None and self.trials < 1) or self.workers < 1 or self.heartbeat < 1:
            raise ConfigError("--trials, --workers and --heartbeat must be >= 1")
