"""Run directories as inputs: make sure a run of a configuration exists (reuse, resume or
train it), say how a completed run was made, and rebuild a run's model with any of its
weight files for the probes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import torch
from torch import nn

from finetune import engine, rundir
from finetune.config import RunConfig, build_config
from finetune.data.input_spec import recorded_input
from finetune.errors import RunDirError
from finetune.models import create_model, init_digest, read_weights, weights_digest


def ensure_run(
    config: RunConfig, run: str | Path, *, progress: engine.Progress | None = None
) -> Path:
    """A completed run of ``config`` in ``run``: reused when it is already there, resumed
    when it was interrupted, trained otherwise. A folder holding another run (another
    configuration, or other initial weights: ``check_holds``) is refused, not overwritten."""
    run = Path(run)
    if run.exists() and (run / rundir.CONFIG).exists():
        check_holds(config, run)
        state, _ = rundir.read_status(run)
        if state != "completed":
            engine.resume(run, progress=progress)
    else:
        engine.train(config, run, progress=progress)
    return run


def check_holds(config: RunConfig, run: Path) -> None:
    """Refuse the run directory ``run`` unless it holds a run of ``config``: not another
    configuration, nor this one trained from other weights than its ``--init`` names now
    (``rundir.check_init_weights``)."""
    record = rundir.read_config(run)
    if record["config_hash"] != config.hash():
        raise RunDirError(
            f"{run} holds another configuration; delete it or pick another output folder"
        )
    if not config.model.init:
        return
    try:
        digest = init_digest(config.model.init)
    except RunDirError:  # gone: a finished run is read as it is, a resume stops at loading
        return
    rundir.check_init_weights(run, record, config.model.init, digest)


def run_summary(run: str | Path) -> dict[str, Any]:
    """The summary attributes of a completed run's ``run.h5``."""
    path = Path(run) / rundir.RUN_H5
    try:
        with h5py.File(path) as f:
            summary = dict(f["summary"].attrs)
    except (OSError, KeyError) as err:
        raise RunDirError(f"cannot read {path}: {err}") from None
    if summary.get("status") != "completed":
        raise RunDirError(f"{run} did not complete (status {summary.get('status')!r})")
    return summary


def run_record(run: str | Path) -> dict[str, Any]:
    """How the completed run ``run`` was made, in one flat record: its configuration hash,
    the digests of the weights it started from (with ``--init``; else empty) and
    of its final weights (``weights_digest``: equal digests, bit-identical runs), when its
    ``run.h5`` was written, and the commit (``-dirty`` appended where its code differed
    from it, as ``git describe --dirty``), torch version, device, threads and CPU it
    trained with (empty where its ``config.json`` predates the field)."""
    run = Path(run)
    record = rundir.read_config(run)
    with h5py.File(run / rundir.RUN_H5) as f:
        created = str(f.attrs["created"])
    machine = record.get("machine", {})
    return {
        "name": run.name,
        "config_hash": record["config_hash"],
        "init_sha256": record["init"].get("weights_sha256") or "",
        "final_sha256": weights_digest(read_weights(run)),
        "created": created,
        "commit": (record.get("git_commit") or "") + ("-dirty" if record.get("git_dirty") else ""),
        "torch": record["versions"]["torch"],
        "device_name": record["runtime"]["device_name"],
        "threads": int(record["runtime"]["threads"]),
        "cpu": machine.get("cpu", ""),
        "cpu_capability": machine.get("cpu_capability", ""),
    }


@dataclass
class LoadedRun:
    """A run's model rebuilt from its ``config.json``, holding one of its weight files."""

    run: Path
    weights: Path
    config: RunConfig
    record: dict[str, Any]
    model: nn.Module

    @property
    def label(self) -> str:
        name = self.weights.name.removesuffix(".safetensors")
        return f"{self.run.name}:{name}"


def pair_attrs(a: LoadedRun, b: LoadedRun) -> dict[str, str]:
    """The root attributes naming the two inputs of a comparison (results/README.md)."""
    return {
        "run_a": str(a.run),
        "run_b": str(b.run),
        "weights_a": str(a.weights),
        "weights_b": str(b.weights),
        "label_a": a.label,
        "label_b": b.label,
        "config_hash_a": a.record["config_hash"],
        "config_hash_b": b.record["config_hash"],
    }


def resolve_weights(ref: str | Path, *, base: str | Path | None = None) -> tuple[Path, Path]:
    """(run directory, weights file) of a reference: a run directory (its final weights),
    ``RUN:epochK`` (an epoch it kept), a ``.safetensors`` file inside a run directory (or its
    ``checkpoints/`` or ``epochs/``), or ``init``: the initial weights of the run ``base``."""
    if str(ref) == "init":
        if base is None:
            raise RunDirError("'init' names the initial weights of another run; give that run")
        run, _ = resolve_weights(base)
        return run, run / rundir.INIT
    named = rundir.run_reference(ref)
    if named is not None:
        return named
    path = Path(ref)
    if path.suffix != ".safetensors":
        raise RunDirError(
            f"{path} is neither a run directory, RUN:epochK nor a .safetensors file of one"
        )
    in_subfolder = path.parent.name in (rundir.CHECKPOINTS, rundir.EPOCHS)
    return (path.parent.parent if in_subfolder else path.parent), path


def load_run(
    ref: str | Path, *, base: str | Path | None = None, device: str | torch.device = "cpu"
) -> LoadedRun:
    """The model of a run reference (see ``resolve_weights``) in eval mode on ``device``."""
    run, weights = resolve_weights(ref, base=base)
    if not (run / rundir.CONFIG).exists():
        raise RunDirError(f"{run} is not a run directory (no {rundir.CONFIG})")
    if not weights.exists():
        raise RunDirError(f"{run} has no weights file {weights.name}; did it complete?")
    record = rundir.read_config(run)
    config = build_config(record["kind"], record["config"])
    model = create_model(
        config.model.name,
        record["data"]["num_classes"],
        recorded_input(record).size,
        drop_rate=config.model.drop_rate,
    )
    state = rundir.load_weights(weights)
    missing = sorted(set(model.state_dict()) - set(state))
    if missing:
        raise RunDirError(f"{weights} lacks tensor {missing[0]!r} of {config.model.name}")
    model.load_state_dict(state)
    return LoadedRun(run, weights, config, record, model.to(device).eval())
