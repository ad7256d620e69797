"""Where and how a run computes: device, autocast precision, memory format, fused kernels,
this process's place among torchrun's data-parallel processes, and the CPU's name."""

from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from finetune.config import TrainConfig
from finetune.distributed import SINGLE, Processes, local_device, start
from finetune.errors import ConfigError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    bf16: bool
    channels_last: bool
    fused: bool
    compile: bool
    processes: Processes = SINGLE

    def autocast(self) -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def synchronize(self) -> None:
        """Wait for the device's queued work (timing needs it on a GPU; no-op on the CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def describe(self) -> dict[str, object]:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return {
            "device": str(self.device),
            "device_name": name,
            "bf16": self.bf16,
            "channels_last": self.channels_last,
            "fused": self.fused,
            "compile": self.compile,
            "threads": torch.get_num_threads(),
            **self.processes.describe(),
        }


def resolve_runtime(train: TrainConfig) -> Runtime:
    """Turn the config's ``auto`` choices into concrete ones for this machine. Under torchrun
    this also joins the process group, and ``cuda`` means this process's own GPU."""
    if train.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(train.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"--device {train.device} asked for, but no CUDA GPU is available")
    device = local_device(device)
    gpu = device.type == "cuda"
    if gpu:
        torch.cuda.set_device(device)
    return Runtime(
        device=device,
        bf16=train.precision == "bf16" or (train.precision == "auto" and gpu),
        channels_last=_tri(train.channels_last, gpu),
        fused=_tri(train.fused, gpu),
        compile=train.compile,
        processes=start(device),
    )


def _tri(value: str, auto: bool) -> bool:
    return auto if value == "auto" else value == "on"


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
