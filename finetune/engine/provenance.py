"""What a run directory records about where its numbers came from: the config.json record
(the resolved configuration, seeds, package versions, git commit and whether the code
differed from it, runtime and machine, data and layer groups) and the attributes written
with the metrics into run.h5."""

from __future__ import annotations

import functools
import platform
import subprocess
from dataclasses import dataclass
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
    checkout = git_checkout(Path(__file__).resolve().parent)
    return {
        "kind": s.config.kind,
        "config": s.config.to_dict(),
        "config_hash": s.config.hash(),
        "seeds": {stream: train.stream_seed(stream) for stream in SEED_STREAMS},
        "command": command,
        "versions": package_versions(),
        "git_commit": checkout.commit,
        "git_dirty": checkout.dirty,
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


@dataclass(frozen=True)
class Checkout:
    """The git commit code runs from, and whether a Python file of the checkout (tracked,
    or new and not ignored) differs from it: None, None outside a git checkout."""

    commit: str | None
    dirty: bool | None


@functools.cache
def git_checkout(directory: Path) -> Checkout:
    """The checkout holding ``directory``, read once per process (at its first run, its
    code imported by then), so that a later commit or edit does not relabel the runs it
    trains."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], capture_output=True, text=True, timeout=5, cwd=directory
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return Checkout(None, None)
    changed = git("status", "--porcelain", "--untracked-files=all", "--", ":(top)*.py")
    return Checkout(commit, None if changed is None else changed != "")


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
