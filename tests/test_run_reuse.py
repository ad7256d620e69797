"""A run directory is reused only when it holds the run asked for: a grid or ``ensure_run``
refuses a directory of another configuration, or of this configuration trained from other
weights than its ``--init`` names now (a source trained again), and so does a resume; it
reuses one whose source was trained again to the same weights. Which weights a run started
from is recorded in ``config.json`` as a digest of their values, whatever file holds
them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from finetune import engine, rundir
from finetune.config import build_config
from finetune.errors import RunDirError
from finetune.executors import PlannedRun, Serial, train_all
from finetune.models import init_digest, read_weights, weights_digest
from finetune.runs import ensure_run

TINY = {"model": "test_resnet", "train_per_class": 5, "epochs": 1, "batch_size": 16}


def source_config(seed: int):
    return build_config("pretrain", {}, {**TINY, "data": "synthetic:source", "seed": seed})


def target(folder: Path, source: Path, seed: int = 0) -> PlannedRun:
    values = {**TINY, "data": "synthetic:near", "init": str(source), "seed": seed}
    return PlannedRun(build_config("finetune", {}, values), folder / "target")


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def files(run: Path) -> dict[str, float]:
    """Each file of ``run`` with its modification time."""
    return {str(p.relative_to(run)): p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file()}


def test_a_directory_of_another_configuration_is_refused_not_reused(tmp_path, one_thread):
    source = ensure_run(source_config(0), tmp_path / "source")
    run = target(tmp_path, source)
    train_all(Serial(), [run])
    before = files(run.path)
    other = target(tmp_path, source, seed=1)  # the same folder
    with pytest.raises(RunDirError, match="holds another configuration"):
        train_all(Serial(), [other])
    with pytest.raises(RunDirError, match="holds another configuration"):
        ensure_run(other.config, other.path)
    assert files(run.path) == before


def test_a_run_whose_source_was_trained_again_is_refused_unless_the_weights_are_the_same(
    tmp_path, one_thread
):
    source = ensure_run(source_config(0), tmp_path / "source")
    run = target(tmp_path, source)
    train_all(Serial(), [run])
    recorded = rundir.read_config(run.path)["init"]["weights_sha256"]
    assert recorded == weights_digest(read_weights(source))

    # Trained again with the same configuration and threads: the same weights, a new file.
    shutil.rmtree(source)
    ensure_run(source_config(0), source)
    assert init_digest(source) == recorded
    assert run.completed()

    # Trained again from another seed into the same folder: other weights.
    shutil.rmtree(source)
    ensure_run(source_config(1), source)
    assert init_digest(source) != recorded
    before = files(run.path)
    with pytest.raises(RunDirError, match=f"trained from other weights than {source}"):
        train_all(Serial(), [run])
    with pytest.raises(RunDirError, match="delete .*target to train it from these"):
        ensure_run(run.config, run.path)
    assert files(run.path) == before

    # Interrupted, it is not resumed from these weights either.
    rundir.write_status(run.path, "running")
    before = files(run.path)
    with pytest.raises(RunDirError, match=f"trained from other weights than {source}"):
        engine.resume(run.path)
    assert files(run.path) == before

    # A run whose source is gone is read as it is.
    rundir.write_status(run.path, "completed")
    shutil.rmtree(source)
    assert run.completed()


def test_the_digest_names_the_values_not_the_file(tmp_path):
    state = {"b.weight": torch.randn(3, 2), "a.bias": torch.zeros(4, dtype=torch.bfloat16),
             "n": torch.tensor(7)}  # fmt: skip
    rundir.save_weights(tmp_path / "w.safetensors", state, metadata={"step": "1"})
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pt")
    digest = weights_digest(state)
    assert init_digest(tmp_path / "w.safetensors") == digest
    assert init_digest(tmp_path / "w.pt") == digest
    nudged = dict(state)
    nudged["b.weight"] = state["b.weight"].clone()
    nudged["b.weight"][0, 0] = torch.nextafter(state["b.weight"][0, 0], torch.tensor(9.0))
    assert weights_digest(nudged) != digest
    renamed = {("c.weight" if k == "b.weight" else k): v for k, v in state.items()}
    assert weights_digest(renamed) != digest
    reshaped = {**state, "b.weight": state["b.weight"].reshape(2, 3)}
    assert weights_digest(reshaped) != digest
