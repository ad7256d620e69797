"""The metrics a run records, kept in memory, checkpointed with the run, and written to
``run.h5`` (layout in results/README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from finetune.result_files import write_result

EPOCH_FIELDS = (
    "train_loss",
    "train_acc",
    "eval_loss",
    "eval_acc",
    "seconds",
    "images_per_s",
    "lr",
)


@dataclass
class History:
    step_loss: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    group_distance: list[list[float]] = field(default_factory=list)
    group_relative_distance: list[list[float]] = field(default_factory=list)
    penalty_names: list[str] = field(default_factory=list)
    penalties: list[list[list[float]]] = field(default_factory=list)
    partial_epoch: dict[str, float] = field(default_factory=dict)
    interval_seconds: float = 0.0  # training time of the epochs since the last row
    kept: list[int] = field(default_factory=list)  # epochs whose weights were kept
    rgn_scale: list[list[float]] = field(default_factory=list)  # per epoch begun, per group

    def state(self) -> dict[str, Any]:
        return {
            "step_loss": list(self.step_loss),
            "step_lr": list(self.step_lr),
            "epochs": [dict(e) for e in self.epochs],
            "group_distance": [list(d) for d in self.group_distance],
            "group_relative_distance": [list(d) for d in self.group_relative_distance],
            "penalty_names": list(self.penalty_names),
            "penalties": [[list(row) for row in e] for e in self.penalties],
            "partial_epoch": dict(self.partial_epoch),
            "interval_seconds": self.interval_seconds,
            "kept": list(self.kept),
            "rgn_scale": [list(row) for row in self.rgn_scale],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> History:
        return cls(
            step_loss=list(state["step_loss"]),
            step_lr=list(state["step_lr"]),
            # Checkpoints from before --eval-every evaluated every epoch and kept no number.
            epochs=[{"epoch": i + 1, **e} for i, e in enumerate(state["epochs"])],
            group_distance=[list(d) for d in state["group_distance"]],
            group_relative_distance=[list(d) for d in state["group_relative_distance"]],
            penalty_names=list(state["penalty_names"]),
            penalties=[[list(row) for row in e] for e in state["penalties"]],
            partial_epoch=dict(state["partial_epoch"]),
            interval_seconds=float(state.get("interval_seconds", 0.0)),
            kept=[int(e) for e in state.get("kept", [])],  # none before --keep-every
            rgn_scale=[list(row) for row in state.get("rgn_scale", [])],  # none before --auto-lr
        )

    def write(
        self,
        path: Path,
        *,
        group_names: list[str],
        attrs: dict[str, Any],
        summary: dict[str, Any],
        command: str,
    ) -> None:
        n_groups = len(group_names)
        datasets: dict[str, Any] = {
            "steps/loss": np.asarray(self.step_loss, dtype=np.float32),
            "steps/lr": np.asarray(self.step_lr, dtype=np.float64),
            "epochs/epoch": np.asarray([e["epoch"] for e in self.epochs], dtype=np.int64),
            "groups/names": group_names,
            "groups/distance_to_init": np.asarray(self.group_distance, dtype=np.float64).reshape(
                -1, n_groups
            ),
            "groups/relative_distance_to_init": np.asarray(
                self.group_relative_distance, dtype=np.float64
            ).reshape(-1, n_groups),
        }
        datasets["penalties/names"] = np.array(self.penalty_names, dtype=h5py.string_dtype())
        datasets["penalties/values"] = np.asarray(self.penalties, dtype=np.float64).reshape(
            len(self.penalties), len(self.penalty_names), n_groups
        )
        for name in EPOCH_FIELDS:
            datasets[f"epochs/{name}"] = np.asarray(
                [e[name] for e in self.epochs], dtype=np.float64
            )
        if self.kept:
            evaluated = {e["epoch"]: e["eval_acc"] for e in self.epochs}
            datasets["kept/epoch"] = np.asarray(self.kept, dtype=np.int64)
            datasets["kept/eval_acc"] = np.asarray(
                [evaluated.get(e, np.nan) for e in self.kept], dtype=np.float64
            )
        if self.rgn_scale:
            datasets["rgn/scale"] = np.asarray(self.rgn_scale, dtype=np.float64)
        write_result(path, "run", datasets, attrs=attrs, summary=summary, command=command)
