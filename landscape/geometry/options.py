"""The options of the sharpness probe (``landscape.geometry.sharpness``): what the Hessian
is measured on and how long its estimators run. Apart from the probe, so that the command
line builds its flags from these fields without importing the models."""

from __future__ import annotations

from dataclasses import dataclass

from finetune.config import TrainConfig, check_choices, option
from finetune.errors import ConfigError
from finetune.runtime import Runtime, resolve_runtime


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
