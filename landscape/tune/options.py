"""The options of ``landscape explain`` (``landscape.tune.explain``: where it measures and
how finely it draws the line to another run). Apart from the explanation, so that the
command line builds its flags from these fields without importing the probes and the
engine."""

from __future__ import annotations

from dataclasses import dataclass

from finetune.config import option
from finetune.errors import ConfigError
from probes.options import CHANGE_EXAMPLES, JACKKNIFE_BATCHES, ProbeOptions


@dataclass(frozen=True)
class ExplainOptions(ProbeOptions):
    """Where explain measures (the probes' options, on a seeded subset of CHANGE_EXAMPLES by
    default) and how finely it draws the line to another run."""

    examples: int | None = option(
        CHANGE_EXAMPLES, "examples measured, a seeded subset of the split"
    )
    batch_size: int | None = option(
        None,
        f"examples per batch (default: a {JACKKNIFE_BATCHES}th of --examples, the groups of "
        "the jackknife errors)",
    )
    points: int = option(25, "--against: evenly spaced points on the line between the runs")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.points < 2:
            raise ConfigError(f"--points must be at least 2, got {self.points}")
