"""The options of the sharpness probe (``landscape.geometry.sharpness``: what the Hessian
is measured on and how long its estimators run) and of module criticality
(``landscape.geometry.criticality``: the rewind grid, the noise grid and the tolerance).
Apart from the probes, so that the command line builds its flags from these fields without
importing the models."""

from __future__ import annotations

import math
from dataclasses import dataclass

from finetune.config import TrainConfig, check_choices, option
from finetune.errors import ConfigError
from finetune.runtime import Runtime, resolve_runtime
from probes.options import DEFAULT_BN_BATCHES, ProbeOptions


@dataclass(frozen=True)
class SharpnessOptions:
    """What the Hessian is measured on and how long the estimators run. ``batch_size`` None
    means the run's training batch size (it fits in memory with a graph)."""

    batches: int = option(8, "training batches (fixed, seeded, no augmentation) the loss averages")
    batch_size: int | None = option(
        None, "examples per batch (default: the run's training batch size)"
    )
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
    seed: int = option(0, "seed of the batches' examples and of the random vectors")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    precision: str = option(
        "fp32", "fp32, or bf16 autocast of the forward pass (coarser)", choices=("fp32", "bf16")
    )

    def __post_init__(self) -> None:
        check_choices(self)
        for name in (
            "batches",
            "batch_size",
            "iterations",
            "hutchinson_samples",
            "vectors_per_pass",
        ):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if not self.tol >= 0:
            raise ConfigError(f"--tol must be >= 0, got {self.tol}")

    def runtime(self) -> Runtime:
        """Device and precision (fp32 unless bf16 is asked for); under torchrun this joins
        the process group."""
        return resolve_runtime(TrainConfig(device=self.device, precision=self.precision))


# Noise scales of the criticality search, as fractions of a group's root-mean-square final
# weight: half-decade steps from 0.1% to 100%.
DEFAULT_SIGMAS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class CriticalityOptions:
    """The grids of module criticality (Chatterji et al. 2019) and where the training error
    is measured: a seeded subset of the run's training split, BatchNorm re-estimated at
    every point as the barrier does. ``sigmas`` may be given as a comma-separated string;
    it is kept sorted ascending."""

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
    examples: int | None = option(
        1000, "training examples measured, a seeded subset (all when fewer)"
    )
    batch_size: int | None = option(
        None, "examples per batch (default: the run's evaluation batch size)"
    )
    bn_batches: int = option(
        DEFAULT_BN_BATCHES,
        "training batches to re-estimate BatchNorm statistics on at every point; 0: off",
    )
    seed: int = option(0, "seed of the examples' order and of the noise")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    precision: str = option(
        "auto", "auto is bf16 autocast on a GPU, fp32 on the CPU", choices=("auto", "fp32", "bf16")
    )

    def __post_init__(self) -> None:
        check_choices(self)
        object.__setattr__(self, "sigmas", _positive_floats("--sigmas", self.sigmas))
        if self.points < 2:
            raise ConfigError(f"--points must be at least 2, got {self.points}")
        if self.draws < 1:
            raise ConfigError(f"--draws must be positive, got {self.draws}")
        if not 0 <= self.epsilon < math.inf:
            raise ConfigError(f"--epsilon must be >= 0, got {self.epsilon}")
        self.probe_options()  # --examples, --batch-size and --bn-batches checked there

    def probe_options(self) -> ProbeOptions:
        """Where the error is measured, as the barrier's options: the training split."""
        return ProbeOptions(
            split="train",
            examples=self.examples,
            batch_size=self.batch_size,
            bn_batches=self.bn_batches,
            seed=self.seed,
            device=self.device,
            precision=self.precision,
        )

    def runtime(self) -> Runtime:
        """Device and precision (bf16 and channels_last on a GPU under auto); under
        torchrun this joins the process group."""
        return self.probe_options().runtime()


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
