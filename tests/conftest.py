"""Shared fixtures: every test seeded and deterministic; one tiny source model pre-trained
once per session for the tests that need pre-trained weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from finetune.config import build_config

FAST = dict(
    data="synthetic:near",
    image_size=16,
    train_per_class=4,
    epochs=2,
    batch_size=8,
    eval_batch_size=64,
    log_every=2,
)


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


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's five runs (about a minute of CPU): test_resnet pre-trained on
    synthetic:source, then fine-tuned on synthetic:near from it and from scratch."""
    from landscape.experiments.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    run_demo(out)
    return out


@pytest.fixture(scope="session")
def source_run(demo_dir: Path) -> Path:
    """test_resnet pre-trained on synthetic:source with the demo's recipe."""
    return demo_dir / "source"
