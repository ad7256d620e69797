"""The options every probe of a run shares: which examples it reads (dataset, split, how
many, in which seeded order), in which batches, and on which device and precision. One
frozen dataclass, so that every probe function takes the same object and every probe
command gets the same flags with the same help, generated from these fields."""

from __future__ import annotations

from dataclasses import dataclass

from finetune.config import TrainConfig, check_choices, option
from finetune.errors import ConfigError
from finetune.runtime import Runtime, resolve_runtime

DEFAULT_BN_BATCHES = 50
# What probes.change measures by default: a seeded subset of the split, and the batches the
# default batch size cuts it into (the groups of its jackknife).
CHANGE_EXAMPLES = 500
JACKKNIFE_BATCHES = 10


@dataclass(frozen=True)
class ProbeOptions:
    """Where a probe measures. ``batch_size`` None means the run's evaluation batch size."""

    data: str | None = option(None, "dataset spec to measure on (default: the run's own)")
    split: str = option("test", "split to measure on", choices=("train", "val", "test"))
    examples: int | None = option(None, "examples used, a seeded subset (default: all)")
    batch_size: int | None = option(
        None, "examples per batch (default: the run's evaluation batch size; fit: 256)"
    )
    bn_batches: int = option(
        DEFAULT_BN_BATCHES,
        "training batches (no augmentation, fixed order) to re-estimate BatchNorm statistics "
        "on at every point; 0: off (ignored for models without BatchNorm)",
    )
    seed: int = option(
        0, "seed of the example orders (plane: also of its directions; fit: of a random init)"
    )
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    precision: str = option(
        "auto", "auto is bf16 autocast on a GPU, fp32 on the CPU", choices=("auto", "fp32", "bf16")
    )

    def __post_init__(self) -> None:
        check_choices(self)
        for name in ("examples", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")
        if self.bn_batches < 0:
            raise ConfigError(f"--bn-batches must be >= 0, got {self.bn_batches}")

    def runtime(self) -> Runtime:
        """Device and precision for measuring (bf16 and channels_last on a GPU under auto);
        under torchrun this joins the process group."""
        return resolve_runtime(TrainConfig(device=self.device, precision=self.precision))

    def batch_size_or(self, default: int) -> int:
        """The batch size given, else ``default`` (a run's evaluation batch size)."""
        return self.batch_size if self.batch_size is not None else default
