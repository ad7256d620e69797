"""The checkpoint a run resumes from: the last weights (safetensors) beside the optimizer
state, step and metrics history of the same step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from finetune import rundir
from finetune.engine.history import History
from finetune.errors import RunDirError


def save_checkpoint(
    out: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    history: History,
) -> None:
    """Optimizer state and position first, weights last; the previous state is kept until
    the weights are in place, so a kill at any moment leaves a matching pair on disk."""
    folder = out / rundir.CHECKPOINTS
    folder.mkdir(exist_ok=True)
    state_path = folder / rundir.STATE
    if state_path.exists():
        state_path.replace(folder / f"prev.{rundir.STATE}")
    rundir.save_torch(
        state_path,
        {"step": step, "optimizer": optimizer.state_dict(), "history": history.state()},
    )
    rundir.save_weights(folder / rundir.LAST, model.state_dict(), metadata={"step": str(step)})


def load_checkpoint(run: Path) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any]]:
    """The last checkpoint's weights and the saved state of the same step (None, {} when the
    run was killed before its first checkpoint)."""
    folder = run / rundir.CHECKPOINTS
    weights_path = folder / rundir.LAST
    if not weights_path.exists():
        return None, {}
    with safe_open(str(weights_path), framework="pt") as f:
        step = int((f.metadata() or {}).get("step", -1))
    for name in (rundir.STATE, f"prev.{rundir.STATE}"):
        path = folder / name
        if path.exists():
            saved = rundir.load_torch(path)
            if int(saved["step"]) == step:
                return rundir.load_weights(weights_path), saved
    raise RunDirError(f"{folder} holds no optimizer state for the weights of step {step}")
