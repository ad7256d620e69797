"""The options of the sharpness probe (``landscape.geometry.sharpness``: what the Hessian
is measured on and how long its estimators run) and of module criticality
(``landscape.geometry.criticality``: the rewind grid, the noise grid and the tolerance).
Apart from the probes, so that the command line builds its flags from these fields without
importing the models."""

from __future__ import annotations

import math
from dataclasses import dataclass

from finetune.config import option, option_group
from finetune.errors import ConfigError
from finetune.runtime import Runtime
from probes.options import ProbeOptions

# Where the Hessian is measured: seeded batches of the run's own training split, in fp32.
SHARPNESS_PROBE = ProbeOptions(split="train", precision="fp32")


@dataclass(frozen=True)
class SharpnessOptions:
    """What the Hessian is measured on (``batches`` batches of ``probe.batch_size``
    examples, None: the run's training batch size, which fits in memory with a graph) and
    how long the estimators run."""

    batches: int = option(8, "training batches (fixed, seeded, no augmentation) the loss averages")
    iterations: int = option(
        100, "most power iterations (Hessian-vector products) per top eigenvalue"
    )
    tol: float = option(
        1e-3, "power iteration stops when the eigenvalue changes by at most this fraction"
    )
    hutchinson_samples: int = option(100, "Rademacher vectors of the trace estimate")
    vectors_per_pass: int = option(
        8,
        "Hutchinson vectors sharing one pass over the batches (memory: two parameter-sized "
        "vectors each)",
    )
    probe: ProbeOptions = option_group(
        SHARPNESS_PROBE,
        fixed=("data", "split", "examples", "bn_batches"),
        help={
            "batch_size": "examples per batch (default: the run's training batch size)",
            "seed": "seed of the batches' examples and of the random vectors",
            "precision": "fp32, or bf16 autocast of the forward pass (coarser; auto: bf16 "
            "on a GPU)",
        },
    )

    def __post_init__(self) -> None:
        for name in ("batches", "iterations", "hutchinson_samples", "vectors_per_pass"):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if not self.tol >= 0:
            raise ConfigError(f"--tol must be >= 0, got {self.tol}")
        if (self.probe.data, self.probe.split) != (None, "train"):
            raise ConfigError("sharpness measures the run's own training split")

    def runtime(self) -> Runtime:
        """Device and precision; under torchrun this joins the process group."""
        return self.probe.runtime()


# Noise scales of the criticality search, as fractions of a group's root-mean-square final
# weight: half-decade steps from 0.1% to 100%.
DEFAULT_SIGMAS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


# Where criticality measures the training error: a seeded subset of the run's own training
# split; the fields a user may change are the command's flags.
CRITICALITY_PROBE = ProbeOptions(split="train", examples=1000)


@dataclass(frozen=True)
class CriticalityOptions:
    """The grids of module criticality (Chatterji et al. 2019) and where the training error
    is measured (``probe``: a seeded subset of the run's training split, BatchNorm
    re-estimated at every point as the barrier does). ``sigmas`` may be given as a
    comma-separated string; it is kept sorted ascending."""

    points: int = option(11, "evenly spaced a from 0 (the group at theta0) to 1 (final), ends in")
    sigmas: tuple[float, ...] = option(
        DEFAULT_SIGMAS,
        "noise scales sigma (comma-separated), as fractions of each group's root-mean-square "
        "final weight",
    )
    epsilon: float = option(
        0.1, "most training error above the run's own that a noisy rewound group may add"
    )
    draws: int = option(2, "Gaussian noise draws averaged at every (a, sigma)")
    probe: ProbeOptions = option_group(
        CRITICALITY_PROBE,
        fixed=("data", "split"),
        help={
            "examples": "training examples measured, a seeded subset (all when fewer)",
            "batch_size": "examples per batch (default: the run's evaluation batch size)",
            "seed": "seed of the examples' order and of the noise",
        },
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigmas", _positive_floats("--sigmas", self.sigmas))
        if self.points < 2:
            raise ConfigError(f"--points must be at least 2, got {self.points}")
        if self.draws < 1:
            raise ConfigError(f"--draws must be positive, got {self.draws}")
        if not 0 <= self.epsilon < math.inf:
            raise ConfigError(f"--epsilon must be >= 0, got {self.epsilon}")
        if (self.probe.data, self.probe.split) != (None, "train"):
            raise ConfigError("module criticality measures the run's own training split")

    def runtime(self) -> Runtime:
        """Device and precision (bf16 and channels_last on a GPU under auto); under
        torchrun this joins the process group."""
        return self.probe.runtime()


def _positive_floats(flag: str, value: object) -> tuple[float, ...]:
    """A comma-separated string or a sequence of positive finite numbers, sorted."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        numbers = sorted(float(v) for v in items)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        numbers = []
    if not numbers or not all(0 < v < math.inf for v in numbers):
        raise ConfigError(f"{flag} takes comma-separated positive numbers, got {value!r}")
    return tuple(numbers)
