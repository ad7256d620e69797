"""``landscape bench``: every speed measurement on this machine under one set of options."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import int_list, stderr_log, user_errors
from finetune.errors import ConfigError

SWITCHES = {"off": False, "on": True}


def bench_command(
    only: str = typer.Option(
        "train,reg,cka,barrier",
        "--only",
        help="comma-separated benchmarks to run: train, reg, cka, barrier, sharpness (the "
        "slowest, only when named)",
    ),
    model: str = typer.Option("test_resnet", "--model", help="timm architecture"),
    image_size: int = typer.Option(32, "--image-size", help="image side in pixels"),
    batch_size: int | None = typer.Option(
        None,
        "--batch-size",
        help="batch of every benchmark (default: 64 for training steps, 128 for the CKA "
        "minibatch, 256 for barrier evaluations, 64 for sharpness)",
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32 or bf16"),
    channels_last: str = typer.Option("auto", "--channels-last", help="auto (on a GPU), on or off"),
    compile_modes: str = typer.Option(
        "off",
        "--compile-modes",
        help="torch.compile settings of the training benchmark, one run each: off, on or off,on",
    ),
    train_steps: int = typer.Option(60, "--train-steps", help="timed steps of each loop"),
    data: str = typer.Option(
        "synthetic:source",
        "--data",
        help="dataset spec of the training benchmark, its training split at --image-size "
        "(landscape datasets lists them; e.g. fashion_mnist[0-4]); the others always use "
        "synthetic:source",
    ),
    data_root: str = typer.Option(
        "data", "--data-root", help="folder holding downloaded datasets (as for finetune)"
    ),
    download: bool = typer.Option(
        False, "--download", help="download the --data dataset if it is missing"
    ),
    reg_steps: int = typer.Option(50, "--reg-steps", help="timed steps per variant, 3 rounds"),
    cka_examples: str = typer.Option(
        "256,1024,4096", "--cka-examples", help="comma-separated example counts of the CKA matrix"
    ),
    torch_cka: bool = typer.Option(
        True, "--torch-cka/--no-torch-cka", help="also time torch-cka on the same matrix"
    ),
    barrier_examples: int = typer.Option(
        1000, "--barrier-examples", help="evaluation examples of the barrier"
    ),
    barrier_points: int = typer.Option(25, "--barrier-points", help="points of the barrier curve"),
    bn_batches: int = typer.Option(4, "--bn-batches", help="batches of BatchNorm re-estimation"),
    repeats: int = typer.Option(
        3, "--repeats", help="timed barrier rounds and sharpness gradients; the best counts"
    ),
    sharpness_batches: int = typer.Option(
        4, "--sharpness-batches", help="training batches of the sharpness benchmark"
    ),
    sharpness_iterations: int = typer.Option(
        20, "--sharpness-iterations", help="power iterations per block (no early stop)"
    ),
    hutchinson_samples: int = typer.Option(
        20, "--hutchinson-samples", help="Rademacher vectors of the sharpness trace"
    ),
    out_dir: Path = typer.Option(
        Path("results/bench"), "--out-dir", help="folder of the NAME_DEVICE.h5 files"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
) -> None:
    """Training images/s of the engine against a plain PyTorch loop on --data, the step-time
    overhead of l2sp, CKA matrix time against forward time, barrier time against plain
    evaluations and, when named, a Hessian-vector product's time against a gradient's;
    one .h5 each in OUT_DIR and one table."""
    from landscape.bench.options import BenchOptions
    from landscape.bench.suite import BenchKnobs, run_benchmarks

    with user_errors():
        options = BenchOptions(
            model=model,
            image_size=image_size,
            batch_size=batch_size,
            device=device,
            precision=precision,
            channels_last=channels_last,
        )
        knobs = BenchKnobs(
            train_steps=train_steps,
            reg_steps=reg_steps,
            cka_examples=tuple(int_list(cka_examples, "--cka-examples")),
            torch_cka=torch_cka,
            barrier_examples=barrier_examples,
            barrier_points=barrier_points,
            bn_batches=bn_batches,
            repeats=repeats,
            sharpness_batches=sharpness_batches,
            sharpness_iterations=sharpness_iterations,
            hutchinson_samples=hutchinson_samples,
            data=data,
            data_root=data_root,
            download=download,
        )
        report = run_benchmarks(
            options,
            only=_names(only),
            compile_modes=[_switch(mode) for mode in _names(compile_modes)],
            knobs=knobs,
            out_dir=out_dir,
            log=stderr_log(quiet),
        )
    typer.echo(report.table())
    typer.echo(f"wrote {', '.join(str(f) for f in report.files)}")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _switch(mode: str) -> bool:
    if mode not in SWITCHES:
        raise ConfigError(f"--compile-modes takes off, on or off,on, got {mode!r}")
    return SWITCHES[mode]
