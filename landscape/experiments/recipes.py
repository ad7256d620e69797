"""The training recipes the experiments share: the tiny source model pre-trained on
synthetic:source, and its fine-tuning on a small target. The demo runs them once; the
reproduced claims vary one knob at a time around them."""

from __future__ import annotations

from typing import Any

MODEL = "test_resnet"
SOURCE_RECIPE: dict[str, Any] = dict(
    model=MODEL,
    data="synthetic:source",
    epochs=6,
    batch_size=128,
    lr=0.05,
    l2=5e-4,
    seed=0,
)
TARGET = "synthetic:near"
TARGET_RECIPE: dict[str, Any] = dict(
    model=MODEL,
    data=TARGET,
    train_per_class=10,
    epochs=30,
    batch_size=32,
    lr=0.01,
    l2=5e-4,
)
CKA_EXAMPLES = 500  # examples of a CKA comparison between two runs
