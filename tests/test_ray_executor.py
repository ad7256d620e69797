"""``--ray ADDRESS`` against a real local Ray cluster (``ray start --head`` on 127.0.0.1,
stopped after): a grid's runs as Ray tasks are the run directories one thread here trains,
bit for bit, a task whose worker is killed mid-run is retried and resumes from its
checkpoint, and claims side by side as Ray tasks write the tables one thread writes here.
Extended (CI's second step): a cluster takes seconds to start."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest
from conftest import need_real_data
from test_all_claims import claims_on_one_thread, same_claims, tiny_source
from test_executors import check_resumed, kill_mid_run, planned, same_weights

from finetune import rundir
from finetune.executors import Serial, train_all
from landscape.experiments.options import ReproOptions
from landscape.experiments.repro import read_claim

pytestmark = pytest.mark.extended
START_TIMEOUT = 120  # seconds for `ray start` or `ray stop`


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_address(monkeypatch) -> Iterator[str]:
    """A one-node Ray cluster of 2 CPUs on 127.0.0.1, its files in a short temporary folder
    (Ray's sockets need a short path), stopped and removed after. Without Ray's token
    authentication: the cluster listens on the loopback address and lives for one test, and
    a token left in ~/.ray by an earlier cluster of this machine refused its driver here."""
    ray = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    need_real_data(ray is not None, 'Ray: pip install -e ".[ray]"')
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the drivers this test starts too
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = [ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
             "--num-cpus=2", "--num-gpus=0", "--include-dashboard=false",
             f"--temp-dir={temp}", "--disable-usage-stats"]  # fmt: skip
    try:
        subprocess.run(start, env=env, check=True, capture_output=True, timeout=START_TIMEOUT)
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True,
                       timeout=START_TIMEOUT)  # fmt: skip
        shutil.rmtree(temp, ignore_errors=True)


def _train_on_ray(address: str, runs: list) -> None:
    from finetune.executors.ray_cluster import RayCluster

    train_all(RayCluster(address), runs)


def _claims_on_ray(address: str, names: list[str], options, out) -> None:
    from landscape.experiments.repro.all_claims import run_claims

    run_claims(names, replace(options, ray=address), out)


def _on_ray(
    address: str, *args: object, target: Callable[..., None] = _train_on_ray
) -> multiprocessing.Process:
    """``target(address, *args)`` (train runs) on the cluster from a driver process of its
    own (a driver connects once per process)."""
    process = multiprocessing.get_context("spawn").Process(target=target, args=(address, *args))
    process.start()
    return process


def test_ray_tasks_train_one_threads_runs_and_claims_and_a_killed_run_resumes(
    ray_address, tmp_path
):
    # One test, so that one cluster serves every part: pytest-xdist would give two tests
    # two workers, and `ray stop` of one would stop the other's cluster.
    grid = [planned(tmp_path / "ray", seed) for seed in range(3)]
    driver = _on_ray(ray_address, grid)
    driver.join(timeout=300)
    assert driver.exitcode == 0
    here = [planned(tmp_path / "serial", seed) for seed in range(3)]
    train_all(Serial(threads=1), here)
    for a, b in zip(grid, here):
        assert same_weights(a.path, b.path)

    # A task whose worker is killed mid-run is retried, and the run resumes.
    long = planned(tmp_path / "ray", 9, per_class=50, epochs=30)
    driver = _on_ray(ray_address, [long])
    kill_mid_run(long.path)
    init_stamp = (long.path / rundir.INIT).stat().st_mtime_ns
    driver.join(timeout=300)
    assert driver.exitcode == 0
    reference = planned(tmp_path / "serial", 9, per_class=50, epochs=30)
    train_all(Serial(threads=1), [reference])
    check_resumed(long, reference, init_stamp)

    # Claims side by side as Ray tasks write the tables one thread writes here.
    names = ["depth", "transfer"]
    options = ReproOptions(runs=tmp_path / "claims", quick=True, source=tiny_source(tmp_path))
    out = tmp_path / "claims-on-ray"
    driver = _on_ray(ray_address, names, options, out, target=_claims_on_ray)
    driver.join(timeout=300)
    assert driver.exitcode == 0
    reference = claims_on_one_thread(names, replace(options, runs=tmp_path / "one"), tmp_path)
    same_claims({name: read_claim(out / f"{name}.h5")[0] for name in names}, reference, out,
                tmp_path)
