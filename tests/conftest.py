"""Shared fixtures: every test seeded and deterministic; one tiny source model pre-trained
once per session (shared by the xdist workers) for the tests that need pre-trained weights."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

# oneDNN's AMX kernels give non-finite bf16 gradients at random steps on the virtual
# machines these tests run on (a 2-core Xeon with amx_bf16; the AVX-512 bf16 kernels are
# exact there), so the tests and the commands they start use those. Set before torch runs
# its first oneDNN primitive, which reads it once.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")

import numpy as np
import pytest
import torch
from filelock import FileLock

from finetune.config import build_config
from finetune.errors import DatasetMissingError
from finetune.executors import LOCKS

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers share the machine's two cores: one intra-op thread each.
    torch.set_num_threads(1)

FAST = dict(
    data="synthetic:near",
    image_size=16,
    train_per_class=4,
    epochs=2,
    batch_size=8,
    eval_batch_size=64,
    log_every=2,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that need the demo's runs last, and within each part the slow ones first
    (the order is otherwise kept): the workers, fed one test at a time, then end together.
    Under xdist the first worker starts building the demo's runs at once in a process of
    its own, so that no worker sits waiting for them while there is other work to do."""
    items.sort(key=lambda item: (_needs_demo(item), item.get_closest_marker("slow") is None))
    needed = any(_needs_demo(item) for item in items)
    if needed and os.environ.get("PYTEST_XDIST_WORKER") == "gw0":
        _start_demo_builder(config)


def _needs_demo(item: pytest.Item) -> bool:
    return "demo_dir" in getattr(item, "fixturenames", ())


def _shared_demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's folder that every xdist worker of one session shares."""
    return tmp_path_factory.getbasetemp().parent / "demo"


def _start_demo_builder(config: pytest.Config) -> None:
    out = _shared_demo_dir(config._tmp_path_factory)
    with open(out.parent / "demo-builder.log", "w") as log:
        command = [sys.executable, str(Path(__file__).with_name("build_demo.py")), str(out)]
        builder = subprocess.Popen(command, stdout=log, stderr=log)
    # The other worker may still need the runs when this one is done.
    config.add_cleanup(builder.wait)


@pytest.fixture(autouse=True)
def _seeded_and_deterministic():
    torch.manual_seed(0)
    np.random.seed(0)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(previous)


def fast_config(kind: str = "finetune", **overrides):
    """A run that takes about a second on a CPU."""
    return build_config(kind, {}, {**FAST, **overrides})


def lscpu_model_name() -> str:
    """The CPU's model name as util-linux's lscpu reads it: a truth apart from the engine's
    own reading of /proc/cpuinfo."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    names = [line.split(":", 1)[1].strip() for line in lscpu.splitlines()
             if line.startswith("Model name:")]  # fmt: skip
    return names[0]


def need_real_data(available: bool, install: str) -> None:
    """Skip in one line naming what to install, unless ``.ci/run`` requires the real
    datasets (LANDSCAPE_REQUIRE_REAL_DATA), where a missing one fails the test."""
    if available:
        return
    if os.environ.get("LANDSCAPE_REQUIRE_REAL_DATA"):
        pytest.fail(f"real data required in CI and missing: {install}")
    pytest.skip(f"needs {install}")


def _fashion_mnist() -> Path:
    from finetune.data.fashion_mnist import APT_PACKAGE, idx_directory

    try:
        return idx_directory(Path("data"), download=False)
    except DatasetMissingError:
        need_real_data(False, f"apt-get install {APT_PACKAGE}")


@pytest.fixture
def fashion_mnist() -> Path:
    """The directory of Fashion-MNIST's IDX files (skips when absent)."""
    return _fashion_mnist()


@pytest.fixture
def digits() -> None:
    """Skips unless scikit-learn, which holds the digits, is installed."""
    need_real_data(
        importlib.util.find_spec("sklearn") is not None, 'pip install "landscape[digits]"'
    )


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The demo's five runs (about two minutes of CPU): test_resnet pre-trained on
    synthetic:source, then fine-tuned on synthetic:near from it and from scratch. Built once
    for all xdist workers, under a file lock: by the process the first worker starts at
    collection, else by the first fixture to get the lock; the others wait and read it
    (every file in it is written atomically)."""
    from landscape.experiments.demo import run_demo

    if worker_id == "master":
        out = tmp_path_factory.mktemp("demo")
        run_demo(out)
        return out
    out = _shared_demo_dir(tmp_path_factory)
    done = out / "built"
    with FileLock(f"{out}.lock"):
        if not done.exists():
            run_demo(out)
            done.touch()
    return out


@pytest.fixture(scope="session")
def real_source(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """test_resnet pre-trained with the real pair's source recipe on 100 images per class
    of Fashion-MNIST classes 0-4 (seconds): the source of the real-data quick claims."""
    from landscape.experiments.recipes import MODEL, PAIRS

    _fashion_mnist()
    recipe = {**PAIRS["real"].source_recipe(MODEL), "train_per_class": 100, "epochs": 4}
    out = tmp_path_factory.getbasetemp().parent / "real-source"
    if worker_id == "master":
        out = tmp_path_factory.mktemp("real") / "source"
    from finetune.runs import ensure_run

    with FileLock(f"{out}.lock"):
        return ensure_run(build_config("pretrain", {}, recipe), out)


@pytest.fixture(scope="session")
def source_run(demo_dir: Path) -> Path:
    """test_resnet pre-trained on synthetic:source with the demo's recipe."""
    return demo_dir / "source"


def run_dirs(folder: Path) -> list[Path]:
    """The run directories in ``folder``, in name order (not the run locks' folder)."""
    return sorted(p for p in folder.iterdir() if p.name != LOCKS)
