"""What every benchmark shares: the model, image size, batch, device, precision, memory
format and compilation it measures under, and the description of the machine that every
benchmark file carries, since its numbers mean nothing without it."""

from __future__ import annotations

import platform
from dataclasses import dataclass

import torch

from finetune.config import TRI_STATE, TrainConfig
from finetune.errors import ConfigError
from finetune.runtime import Runtime, resolve_runtime

PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class BenchOptions:
    """``batch_size`` None lets each benchmark use its own default (training steps 64, the
    CKA minibatch 128, the barrier's evaluation batch 256); ``compile`` applies to the
    training benchmark only, the others run their models uncompiled."""

    model: str = "test_resnet"
    image_size: int = 32
    batch_size: int | None = None
    device: str = "auto"
    precision: str = "auto"
    channels_last: str = "auto"
    compile: bool = False

    def __post_init__(self) -> None:
        if self.image_size < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise ConfigError(
                f"--image-size and --batch-size must be positive, got {self.image_size} and "
                f"{self.batch_size}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be auto, fp32 or bf16, got {self.precision!r}")
        if self.channels_last not in TRI_STATE:
            raise ConfigError(
                f"--channels-last must be auto, on or off, got {self.channels_last!r}"
            )

    def batch(self, default: int) -> int:
        """The batch size given, else the benchmark's own ``default``."""
        return default if self.batch_size is None else self.batch_size

    def runtime(self, *, compiles: bool = True) -> Runtime:
        """The concrete device, precision and memory format on this machine, resolved as
        for ``landscape finetune``; ``compiles`` False for a benchmark that never compiles,
        so that its description says so."""
        train = TrainConfig(
            device=self.device,
            precision=self.precision,
            channels_last=self.channels_last,
            compile=self.compile and compiles,
        )
        return resolve_runtime(train)


def device_description(runtime: Runtime) -> dict[str, object]:
    """``Runtime.describe()`` plus what else the numbers depend on: the precision by name,
    the torch and CUDA versions and the processor."""
    return {
        **runtime.describe(),
        "precision": "bf16" if runtime.bf16 else "fp32",
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda or "none",
        "processor": platform.processor() or platform.machine(),
    }
