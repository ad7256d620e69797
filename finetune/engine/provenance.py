"""What a run directory records about where its numbers came from: the config.json record
(the resolved configuration, seeds, package versions, git commit, runtime and machine, data
and layer groups) and the attributes written with the metrics into run.h5."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch

from finetune import __version__, rundir
from finetune.engine.history import History
from finetune.engine.setup import Setup
from finetune.runtime import cpu_name

SEED_STREAMS = ("init", "order", "aug")


def config_record(s: Setup, command: str) -> dict[str, Any]:
    """config.json: the whole resolved configuration and what is needed to reproduce it."""
    train = s.config.train
    return {
        "kind": s.config.kind,
        "config": s.config.to_dict(),
        "config_hash": s.config.hash(),
        "seeds": {stream: train.stream_seed(stream) for stream in SEED_STREAMS},
        "command": command,
        "versions": package_versions(),
        "git_commit": git_commit(),
        "runtime": s.runtime.describe(),
        "machine": machine(),
        "data": {
            "classes": s.train_set.classes,
            "num_classes": s.train_set.num_classes,
            "image_size": s.train_set.image_size,
            "input": s.input.to_dict(),
            "train_examples": len(s.train_set),
            "eval_examples": s.eval_batches.examples,
            "test_examples": s.test_batches.examples,
        },
        "groups": [{"name": g.name, "params": list(g.params)} for g in s.groups],
        "init": {
            "source": s.init_report.source if s.init_report else "random",
            "new_head": s.init_report.replaced_head if s.init_report else [],
            "ignored_checkpoint_keys": s.init_report.unexpected if s.init_report else [],
            "weights_sha256": s.init_report.digest or None if s.init_report else None,
        },
    }


def package_versions() -> dict[str, str]:
    """The versions of this package, Python and the libraries the numbers depend on."""
    return {
        "landscape": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
    }


def machine() -> dict[str, str]:
    """The CPU this run computed on and the instruction set torch's kernels use there: on
    the CPU, bits of a run depend on them as on the threads (``runtime``)."""
    return {"cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def git_commit() -> str | None:
    """The commit of the checkout this code runs from, or None outside a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def write_run_h5(
    out: Path, s: Setup, history: History, command: str, summary: dict[str, Any]
) -> None:
    """run.h5: the metrics ``history`` with the run's configuration, hash and ``summary``."""
    history.write(
        out / rundir.RUN_H5,
        group_names=[g.name for g in s.groups],
        attrs={
            "config": s.config.to_dict(),
            "config_hash": s.config.hash(),
            "model": s.config.model.name,
            "data": s.config.data.spec,
            "steps_per_epoch": s.steps_per_epoch,
        },
        summary=summary,
        command=command,
    )
