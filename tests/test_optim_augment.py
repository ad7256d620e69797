"""Schedules against their closed forms; augmentation properties; parameter groups."""

import math

import pytest
import torch

from finetune.config import OptimConfig
from finetune.data.augment import BatchPrep, hflip, translate
from finetune.data.loader import epoch_order
from finetune.optim import lr_at


def test_cosine_with_warmup_matches_closed_form():
    cfg = OptimConfig(lr=0.1, warmup_epochs=1, min_lr=0.01)
    spe, total = 10, 50
    assert lr_at(cfg, 0, spe, total) == pytest.approx(0.01)
    assert lr_at(cfg, 9, spe, total) == pytest.approx(0.1)
    t = 30
    expected = 0.01 + 0.5 * 0.09 * (1 + math.cos(math.pi * (t - 10) / 40))
    assert lr_at(cfg, t, spe, total) == pytest.approx(expected)


def test_step_schedule_decays_every_step_epochs():
    cfg = OptimConfig(lr=1.0, schedule="step", step_epochs=2, step_gamma=0.5)
    assert [lr_at(cfg, s, 5, 100) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]


def test_translate_by_zero_is_identity_and_shift_moves_content():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(translate(x, 0, g), x)
    shifted = translate(x, 2, g)
    assert shifted.shape == x.shape
    # Every output row of image 0 is a (reflect-padded) row of the input shifted by one offset.
    padded = torch.nn.functional.pad(x, (2,) * 4, mode="reflect")
    windows = {
        (dy, dx)
        for dy in range(5)
        for dx in range(5)
        if torch.equal(padded[0, :, dy : dy + 8, dx : dx + 8], shifted[0])
    }
    assert len(windows) >= 1


def test_hflip_flips_a_subset_exactly():
    x = torch.randn(64, 3, 4, 4)
    out = hflip(x, torch.Generator().manual_seed(1))
    flipped = [torch.equal(o, i.flip(2)) for o, i in zip(out, x)]
    kept = [torch.equal(o, i) for o, i in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54


def test_prep_normalises_with_mean_and_std():
    prep = BatchPrep(
        (0.5, 0.25, 0.0),
        (0.5, 0.5, 1.0),
        torch.device("cpu"),
        augment=False,
        flip=False,
        channels_last=True,
    )
    images = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = prep(images)
    assert torch.allclose(out[0, :, 0, 0], torch.tensor([1.0, 1.5, 1.0]))
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a, b, c = epoch_order(50, 3, 1), epoch_order(50, 3, 1), epoch_order(50, 3, 2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sorted(a.tolist()) == list(range(50))
