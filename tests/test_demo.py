"""The demo, and the transfer effect the synthetic tasks were built to show: a test_resnet
pre-trained on synthetic:source for about a minute of CPU, fine-tuned on synthetic:near
with 10 images per class, beats the same fine-tuning from random init by 10+ points."""

import pytest

from landscape.experiments.demo import SEEDS, run_demo
from landscape.experiments.recipes import TARGET_RECIPE

pytestmark = pytest.mark.slow


def test_pretraining_on_source_beats_random_init_on_near_by_ten_points(demo_dir):
    report = run_demo(demo_dir)
    assert TARGET_RECIPE["train_per_class"] == 10
    assert report.source.test_acc > 0.8
    pretrained = [r.test_acc for r in report.runs if r.init == "pretrained"]
    scratch = [r.test_acc for r in report.runs if r.init == "random"]
    assert len(pretrained) == len(scratch) == len(SEEDS)
    assert min(pretrained) - max(scratch) >= 0.10, (pretrained, scratch)


def test_runs_from_the_same_pretrained_weights_stay_closer_than_runs_from_random_init(demo_dir):
    """Neyshabur et al. 2020: two P-T runs are more similar in feature space (CKA), much
    closer in parameter space, and in one basin (a lower loss barrier) than two RI-T runs."""
    pairs = {p.init: p for p in run_demo(demo_dir).pairs}
    pretrained, random = pairs["pretrained"], pairs["random"]
    assert pretrained.mean_cka > random.mean_cka + 0.05, (pretrained, random)
    assert 5 * pretrained.distance < random.distance, (pretrained, random)
    assert 0 < pretrained.mean_cka <= 1 and 0 < random.mean_cka <= 1
    assert pretrained.loss_barrier < 0.05 < random.loss_barrier, (pretrained, random)
    assert pretrained.error_barrier < random.error_barrier, (pretrained, random)
    for init in pairs:
        for kind in ("cka", "distance", "barrier"):
            assert (demo_dir / f"{kind}-{init}.png").stat().st_size > 0


def test_demo_reuses_its_completed_runs_and_prints_the_table(demo_dir, monkeypatch, capsys):
    before = {p: p.stat().st_mtime_ns for p in demo_dir.rglob("final.safetensors")}
    assert len(before) == 1 + 2 * len(SEEDS)
    from test_cli import run_cli

    code, stdout, _ = run_cli(monkeypatch, capsys, "demo", "--out", str(demo_dir), "--quiet")
    assert code == 0
    assert "transfer gain" in stdout and "pretrained-seed0" in stdout
    assert "mean CKA" in stdout and "loss barrier" in stdout
    assert "landscape repro list" in stdout
    after = {p: p.stat().st_mtime_ns for p in demo_dir.rglob("final.safetensors")}
    assert after == before
