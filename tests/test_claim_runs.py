"""A claim file records every run the claim completed (kind ``repro``'s ``runs/``): the
runs it trained, the runs it reused, and the runs of the independent chains it handed to
the executor (on worker processes: trained there), each once. Every record is checked
against the run directory read by other means (its files, lscpu, the weights' tensors),
and a rejudged file keeps them."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import FAST, lscpu_model_name, run_dirs
from safetensors.torch import load_file
from test_results_layout import actual, documented, registry_problems

import landscape.experiments.repro
from finetune.config import build_config
from finetune.executors import cores, thread_count
from finetune.models import read_weights, weights_digest
from finetune.runs import ensure_run
from landscape.experiments.options import ReproOptions, final_test_accuracy
from landscape.experiments.repro import ClaimResult, register_claim, rejudge, run_claim


def _train_in_chain(cell: tuple[ReproOptions, int]) -> Path:
    """A chain of ``options.map``: the first run again (complete: reused), then its own."""
    options, seed = cell
    options.finetune("first", {**FAST, "seed": 0})
    return options.finetune(f"chain-{seed}", {**FAST, "seed": seed})


def _toy(options: ReproOptions) -> ClaimResult:
    first = options.finetune("first", {**FAST, "seed": 0})
    chains = options.map(_train_in_chain, [(options.worker(), 1), (options.worker(), 2)])
    values = np.array([[[final_test_accuracy(run) for run in (first, *chains)]]])
    return ClaimResult(["runs"], ["acc"], values, np.array([0.0]), "x", "y",
                       {"acc": (values.mean(axis=2)[0], values.std(axis=2)[0])},
                       statistic=0.0, threshold=0.0, held=False, verdict="toy")  # fmt: skip


@pytest.fixture
def toy_claim(monkeypatch):
    landscape.experiments.repro.claims()  # the real claims first: restoring keeps them
    monkeypatch.setattr(landscape.experiments.repro, "CLAIMS",
                        dict(landscape.experiments.repro.CLAIMS))  # fmt: skip
    register_claim("toy_runs", "a toy claim", "a toy finding", judge=lambda result: result)(_toy)


# Serially here; on two worker processes (about a minute on 2 cores beside another test
# worker: in .ci/run's second step), where the chains' runs come back with their results.
@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.extended)])
def test_a_claim_file_records_every_run_it_completed_wherever_it_trained(
    workers, toy_claim, tmp_path
):
    options = ReproOptions(runs=tmp_path / "runs", workers=workers)
    run_claim("toy_runs", options, tmp_path)
    path = tmp_path / "toy_runs.h5"
    assert registry_problems(path) == [] and actual(path) == documented("repro")
    with h5py.File(path) as f:
        runs = {key: list(data.asstr()[()]) if h5py.check_string_dtype(data.dtype)
                else list(data[()]) for key, data in f["runs"].items()}  # fmt: skip
    # Each run once, whether trained here, in a worker, or reused by a chain.
    assert runs["name"] == ["first", "chain-1", "chain-2"]
    assert {run.name for run in run_dirs(tmp_path / "runs")} == set(runs["name"])
    for i, name in enumerate(runs["name"]):
        run = tmp_path / "runs" / name
        record = json.loads((run / "config.json").read_text())
        with h5py.File(run / "run.h5") as f:
            assert runs["created"][i] == f.attrs["created"]
        assert runs["config_hash"][i] == record["config_hash"]
        assert runs["threads"][i] == record["runtime"]["threads"]
        assert runs["init_sha256"][i] == ""  # from random weights
    per_run = max(1, cores() // workers) if workers > 1 else torch.get_num_threads()
    assert runs["threads"] == [per_run] * 3
    assert set(runs["cpu"]) == {lscpu_model_name()}
    assert set(runs["torch"]) == {torch.__version__} and set(runs["device_name"]) == {"cpu"}

    # Equal digests are equal tensors: chain-1, and the same configuration trained again
    # here with its threads; chain-2 (another seed) differs.
    again = tmp_path / "again"
    with thread_count(per_run):
        ensure_run(build_config("finetune", {}, {"model": "test_resnet", **FAST, "seed": 1}),
                   again)  # fmt: skip
    tensors = {name: load_file(tmp_path / "runs" / name / "final.safetensors")
               for name in ("chain-1", "chain-2")}  # fmt: skip
    here = load_file(again / "final.safetensors")
    assert all(torch.equal(here[k], tensors["chain-1"][k]) for k in here)
    assert not all(torch.equal(here[k], tensors["chain-2"][k]) for k in here)
    index = {name: i for i, name in enumerate(runs["name"])}
    with h5py.File(path) as f:
        digests = list(f["runs/final_sha256"].asstr()[()])
    assert digests[index["chain-1"]] != digests[index["chain-2"]]
    assert digests[index["chain-1"]] == weights_digest(read_weights(again))

    # Rejudging rewrites the verdict from the table and keeps the runs' records.
    with h5py.File(path) as f:
        before = {key: data[()] for key, data in f["runs"].items()}
    rejudge("toy_runs", path)
    with h5py.File(path) as f:
        assert {key: data[()] for key, data in f["runs"].items()}.keys() == before.keys()
        for key, data in f["runs"].items():
            np.testing.assert_array_equal(data[()], before[key])
