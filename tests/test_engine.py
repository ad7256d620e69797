"""The engine and the run directory: contents, determinism, seed streams, kill and resume,
divergence, three architecture families, the GPU code paths exercised on the CPU."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import torch
from conftest import fast_config, lscpu_model_name
from safetensors.torch import load_file

from finetune import engine
from finetune.errors import ConfigError, RunDirError


def _weights(run: Path, name: str = "final.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(run / name))


def _identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_directory_holds_the_contract(tmp_path):
    run = tmp_path / "run"
    result = engine.train(fast_config(), run, command="landscape finetune --test")
    assert result.status == "completed"
    assert {p.name for p in run.iterdir()} == {
        "config.json",
        "init.safetensors",
        "final.safetensors",
        "checkpoints",
        "run.h5",
        "status",
    }
    assert {p.name for p in (run / "checkpoints").iterdir()} >= {"last.safetensors", "state.pt"}
    assert (run / "status").read_text() == "completed\n"
    record = json.loads((run / "config.json").read_text())
    assert record["command"] == "landscape finetune --test"
    assert record["config"]["reg"]["l2"] == [5e-4]  # defaults written out
    assert set(record["seeds"]) == {"init", "order", "aug"}
    assert {"torch", "timm", "landscape"} <= set(record["versions"])
    assert record["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert record["machine"]["cpu"] == lscpu_model_name()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(engine.__file__).parent,
                          capture_output=True, text=True)  # fmt: skip
    in_checkout = head.returncode == 0
    assert record["git_commit"] == (head.stdout.strip() if in_checkout else None)
    assert record["git_dirty"] in ((False, True) if in_checkout else (None,))
    assert record["data"]["train_examples"] == 4 * 10
    steps_per_epoch = 5  # 40 images, batch 8
    with h5py.File(run / "run.h5") as f:
        assert f.attrs["kind"] == "run"
        assert f["steps/loss"].shape == (2 * steps_per_epoch,)
        assert f["epochs/eval_acc"].shape == (2,)
        assert f["groups/distance_to_init"].shape == (2, 6)
        assert f["summary"].attrs["test_acc"] == pytest.approx(result.summary["test_acc"])
    # No temporary files are left behind.
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]


def test_distance_to_init_matches_the_saved_weights(tmp_path):
    run = tmp_path / "run"
    engine.train(fast_config(), run, command="test")
    w0, w1 = _weights(run, "init.safetensors"), _weights(run)
    with h5py.File(run / "run.h5") as f:
        names = [n.decode() for n in f["groups/names"][:]]
        logged = f["groups/distance_to_init"][-1]
    record = json.loads((run / "config.json").read_text())
    for group, value in zip(record["groups"], logged):
        expected = torch.sqrt(sum(((w1[p] - w0[p]).double() ** 2).sum() for p in group["params"]))
        assert value == pytest.approx(float(expected), rel=1e-6)
    assert names[0] == "stem" and names[-1] == "head"


def test_same_config_gives_bit_identical_weights(tmp_path):
    engine.train(fast_config(), tmp_path / "a", command="test")
    engine.train(fast_config(), tmp_path / "b", command="test")
    engine.train(fast_config(seed=1), tmp_path / "c", command="test")
    assert _identical(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert not _identical(_weights(tmp_path / "a"), _weights(tmp_path / "c"))


def test_seed_streams_vary_one_thing_at_a_time(tmp_path, source_run):
    base = fast_config(init=str(source_run))
    engine.train(base, tmp_path / "a", command="test")
    engine.train(fast_config(init=str(source_run), order_seed=123), tmp_path / "b", command="t")
    engine.train(fast_config(init=str(source_run), init_seed=123), tmp_path / "c", command="t")
    init_a, init_b, init_c = (_weights(tmp_path / r, "init.safetensors") for r in "abc")
    assert _identical(init_a, init_b)  # same initial weights, another data order
    assert not _identical(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert not torch.equal(init_a["fc.weight"], init_c["fc.weight"])  # another new head
    assert torch.equal(init_a["layer1.0.conv1.weight"], init_c["layer1.0.conv1.weight"])
    source = _weights(source_run)
    assert torch.equal(init_a["layer3.0.conv2.weight"], source["layer3.0.conv2.weight"])


def test_evaluating_every_few_epochs_trains_the_same_weights(tmp_path):
    every = engine.train(fast_config(epochs=5), tmp_path / "every", command="t")
    sparse = engine.train(fast_config(epochs=5, eval_every=2), tmp_path / "sparse", command="t")
    assert _identical(_weights(every.run), _weights(sparse.run))
    assert sparse.summary["test_acc"] == every.summary["test_acc"]
    assert sparse.summary["epochs"] == 5
    with h5py.File(every.run / "run.h5") as a, h5py.File(sparse.run / "run.h5") as b:
        assert list(b["epochs/epoch"][:]) == [2, 4, 5]  # every second epoch and the last
        rows = [1, 3, 4]
        for name in ("train_loss", "train_acc", "eval_loss", "eval_acc", "lr"):
            assert (a[f"epochs/{name}"][rows] == b[f"epochs/{name}"][:]).all(), name
        assert (a["groups/distance_to_init"][rows] == b["groups/distance_to_init"][:]).all()
        assert (a["steps/loss"][:] == b["steps/loss"][:]).all()
        seconds = b["epochs/seconds"][:]
        assert seconds.sum() == pytest.approx(b["summary"].attrs["train_seconds"])
        # Throughput is of the training steps alone: one epoch's 40 images over its seconds.
        rate = a["epochs/images_per_s"][:] * a["epochs/seconds"][:]
        assert rate == pytest.approx([40.0] * 5, rel=1e-6)


class _Interrupt(Exception):
    pass


def test_a_run_cut_between_evaluations_resumes_to_the_same_weights(tmp_path):
    options = dict(epochs=5, eval_every=2, checkpoint_every=3)  # 5 steps per epoch
    whole = engine.train(fast_config(**options), tmp_path / "whole", command="t")

    def interrupt(event):
        if event["event"] == "step" and event["step"] >= 8:  # after the checkpoint at step 6
            raise _Interrupt

    with pytest.raises(_Interrupt):
        engine.train(fast_config(**options), tmp_path / "cut", progress=interrupt, command="t")
    resumed = engine.resume(tmp_path / "cut")
    assert _identical(_weights(whole.run), _weights(resumed.run))
    with h5py.File(whole.run / "run.h5") as a, h5py.File(resumed.run / "run.h5") as b:
        assert list(b["epochs/epoch"][:]) == [2, 4, 5]
        assert (a["epochs/eval_acc"][:] == b["epochs/eval_acc"][:]).all()


def test_eval_every_must_be_positive():
    with pytest.raises(ConfigError, match="--eval-every must be positive"):
        fast_config(eval_every=0)


def test_existing_output_or_completed_run_is_refused(tmp_path):
    run = tmp_path / "run"
    engine.train(fast_config(epochs=1), run, command="test")
    with pytest.raises(RunDirError, match="already exists"):
        engine.train(fast_config(epochs=1), run, command="test")
    with pytest.raises(RunDirError, match="already completed"):
        engine.resume(run)


def test_divergence_fails_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    config = fast_config(schedule="step", step_epochs=1, step_gamma=1e12, lr=0.05)
    result = engine.train(config, run, command="test")
    assert result.status == "failed"
    state, reason = (run / "status").read_text().split("\n", 1)
    assert state == "failed" and "non-finite loss at step" in reason
    step = int(reason.split("step")[1])
    assert step > 5  # the first epoch (steps 1-5) was fine
    assert not (run / "final.safetensors").exists()
    last = _weights(run, "checkpoints/last.safetensors")
    assert all(torch.isfinite(t.float()).all() for t in last.values())


@pytest.mark.parametrize("model", ["test_resnet", "test_convnext", "test_vit"])
def test_architecture_families_fine_tune_a_step(tmp_path, model):
    config = fast_config(model=model, epochs=1, train_per_class=1, batch_size=10, image_size=32)
    result = engine.train(config, tmp_path / "run", command="test")
    assert result.status == "completed"
    assert result.group_names[0] == "stem" and result.group_names[-1] == "head"
    assert len(result.group_names) >= 5
    moved = [d for d in h5py.File(tmp_path / "run" / "run.h5")["groups/distance_to_init"][0]]
    assert all(d > 0 for d in moved)


def test_an_image_too_small_for_the_model_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="test_convnext cannot take 16px images"):
        engine.train(fast_config(model="test_convnext"), tmp_path / "run", command="test")
    assert not (tmp_path / "run").exists()


def test_gpu_code_paths_run_on_the_cpu(tmp_path):
    config = fast_config(
        precision="bf16",
        channels_last="on",
        fused="on",
        optimizer="adamw",
        lr=1e-3,
        warmup_epochs=0.5,
    )
    result = engine.train(config, tmp_path / "run", command="test")
    assert result.status == "completed"
    assert torch.isfinite(torch.tensor(result.summary["final_train_loss"]))
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["runtime"]["bf16"] and record["runtime"]["channels_last"]
    assert record["runtime"]["fused"]


@pytest.mark.extended  # inductor builds its kernels for minutes on a fresh machine
def test_compiled_model_trains_like_the_eager_one(tmp_path):
    eager = engine.train(fast_config(epochs=1), tmp_path / "a", command="test")
    compiled = engine.train(fast_config(epochs=1, compile=True), tmp_path / "b", command="test")
    assert compiled.status == "completed"
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4)
    assert compiled.summary["test_acc"] == pytest.approx(eager.summary["test_acc"], abs=0.05)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", "finetune", "--quiet", *args]


@pytest.mark.extended  # three processes, each importing torch and timm
def test_sigkill_then_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    options = [
        "--data",
        "synthetic:near",
        "--train-per-class",
        "20",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--checkpoint-every",
        "4",
        "--seed",
        "5",
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    reference = tmp_path / "reference"
    subprocess.run(_cli(*options, "--out", str(reference)), check=True, env=env)

    killed = tmp_path / "killed"
    process = subprocess.Popen(_cli(*options, "--out", str(killed)), env=env)
    checkpoint = killed / "checkpoints" / "last.safetensors"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (killed / "status").read_text().startswith("running")
    assert not (killed / "final.safetensors").exists()

    subprocess.run(
        [sys.executable, "-m", "cli", "finetune", "--quiet", "--resume", str(killed)],
        check=True,
        env=env,
    )
    assert (killed / "status").read_text() == "completed\n"
    assert _identical(_weights(reference), _weights(killed))
    with h5py.File(reference / "run.h5") as a, h5py.File(killed / "run.h5") as b:
        assert (a["steps/loss"][:] == b["steps/loss"][:]).all()
        assert (a["epochs/eval_acc"][:] == b["epochs/eval_acc"][:]).all()


def test_streamed_data_trains_exactly_like_device_resident_data(tmp_path):
    engine.train(fast_config(device_data="on"), tmp_path / "on", command="test")
    engine.train(fast_config(device_data="off", workers=1), tmp_path / "off", command="test")
    assert _identical(_weights(tmp_path / "on"), _weights(tmp_path / "off"))
