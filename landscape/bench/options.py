"""The options of ``landscape bench``: what every benchmark shares (the model, image size,
batch, device, precision, memory format and compilation it measures under), each
benchmark's own sizes, and the description of the machine that every benchmark file
carries, since its numbers mean nothing without it. The command's flags are generated from
these fields."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from finetune.config import TRI_STATE, TrainConfig, check_choices, comma_ints, option
from finetune.data import resolve_spec
from finetune.errors import ConfigError
from finetune.runtime import Runtime, cpu_name, resolve_runtime

BENCH_DATA = "synthetic:source"  # every benchmark's images; the training one's default
DATA_FLAG = "--data"  # as for ``landscape finetune``
BENCHMARKS = ("train", "reg", "cka", "barrier", "sharpness")
# What runs when --only is not given: all but sharpness, the slowest.
DEFAULT_BENCHMARKS = BENCHMARKS[:-1]


@dataclass(frozen=True)
class BenchOptions:
    """``batch_size`` None lets each benchmark use its own default; ``compile`` applies to
    the training benchmark only (``landscape bench`` sets it from --compile-modes), the
    others run their models uncompiled."""

    model: str = option("test_resnet", "timm architecture")
    image_size: int = option(32, "image side in pixels")
    batch_size: int | None = option(
        None,
        "batch of every benchmark (default: 64 for training steps, 128 for the CKA "
        "minibatch, 256 for barrier evaluations, 64 for sharpness)",
    )
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    precision: str = option("auto", "auto, fp32 or bf16", choices=("auto", "fp32", "bf16"))
    channels_last: str = option("auto", "auto (on a GPU), on or off", choices=TRI_STATE)
    compile: bool = option(False, "torch.compile the training benchmark's model")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.image_size < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise ConfigError(
                f"--image-size and --batch-size must be positive, got {self.image_size} and "
                f"{self.batch_size}"
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


@dataclass(frozen=True)
class SuiteOptions:
    """Each benchmark's own sizes, and the dataset of the training benchmark (``data``, a
    registry spec read from ``data_root``; the others always use BENCH_DATA). Checked when
    built, so a bad size never wastes the benchmarks before it. ``cka_examples`` may be
    given as a comma-separated string."""

    train_steps: int = option(60, "timed steps of each loop")
    reg_steps: int = option(50, "timed steps per variant, 3 rounds")
    cka_examples: tuple[int, ...] = option(
        (256, 1024, 4096), "comma-separated example counts of the CKA matrix"
    )
    torch_cka: bool = option(True, "also time torch-cka on the same matrix")
    barrier_examples: int = option(1000, "evaluation examples of the barrier")
    barrier_points: int = option(25, "points of the barrier curve")
    bn_batches: int = option(4, "batches of BatchNorm re-estimation")
    repeats: int = option(3, "timed barrier rounds and sharpness gradients; the best counts")
    sharpness_batches: int = option(4, "training batches of the sharpness benchmark")
    sharpness_iterations: int = option(20, "power iterations per block (no early stop)")
    hutchinson_samples: int = option(20, "Rademacher vectors of the sharpness trace")
    data: str = option(
        BENCH_DATA,
        "dataset spec of the training benchmark, its training split at --image-size "
        "(landscape datasets lists them; e.g. fashion_mnist[0-4]); the others always use "
        f"{BENCH_DATA}",
    )
    data_root: str = option("data", "folder holding downloaded datasets (as for finetune)")
    download: bool = option(False, "download the --data dataset if it is missing")

    def __post_init__(self) -> None:
        object.__setattr__(self, "cka_examples", comma_ints(self.cka_examples, "--cka-examples"))
        sizes = dict(
            train_steps=self.train_steps,
            reg_steps=self.reg_steps,
            barrier_examples=self.barrier_examples,
            barrier_points=self.barrier_points - 1,
            bn_batches=self.bn_batches,
            repeats=self.repeats,
            sharpness_batches=self.sharpness_batches,
            sharpness_iterations=self.sharpness_iterations,
            hutchinson_samples=self.hutchinson_samples,
        )
        bad = [name.replace("_", "-") for name, value in sizes.items() if value < 1]
        if bad:
            raise ConfigError(
                f"--{', --'.join(bad)} too small (counts must be positive, points at least 2)"
            )
        resolve_spec(self.data, flag=DATA_FLAG)


def device_description(runtime: Runtime) -> dict[str, object]:
    """``Runtime.describe()`` plus what else the numbers depend on: the precision by name,
    the torch and CUDA versions and the processor."""
    return {
        **runtime.describe(),
        "precision": "bf16" if runtime.bf16 else "fp32",
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda or "none",
        "processor": cpu_name(),
    }
