"""``landscape bench``: every speed measurement on this machine under one set of options.
Its flags are generated from ``BenchOptions`` and ``SuiteOptions``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cli.common import keyword, stderr_log, user_errors
from cli.options import options_from, options_parameters, with_parameters
from finetune.errors import ConfigError
from landscape.bench.options import BENCHMARKS, DEFAULT_BENCHMARKS, BenchOptions, SuiteOptions

SWITCHES = {"off": False, "on": True}


def bench_command(**values: Any) -> None:
    """Training images/s of the engine against a plain PyTorch loop on --data, the step-time
    overhead of l2sp, CKA matrix time against forward time, barrier time against plain
    evaluations and, when named, a Hessian-vector product's time against a gradient's;
    one .h5 each in OUT_DIR and one table."""
    from landscape.bench.suite import run_benchmarks

    with user_errors():
        options = options_from(BenchOptions, values)
        sizes = options_from(SuiteOptions, values)
        report = run_benchmarks(
            options,
            only=_names(values["only"]),
            compile_modes=[_switch(mode) for mode in _names(values["compile_modes"])],
            sizes=sizes,
            out_dir=values["out_dir"],
            log=stderr_log(values["quiet"]),
        )
    typer.echo(report.table())
    typer.echo(f"wrote {', '.join(str(f) for f in report.files)}")


with_parameters(
    bench_command,
    [
        keyword(
            "only",
            typer.Option(
                ",".join(DEFAULT_BENCHMARKS),
                "--only",
                help=f"comma-separated benchmarks to run: {', '.join(BENCHMARKS)} (the "
                "last is the slowest, run only when named)",
            ),
            str,
        ),
        *options_parameters(BenchOptions, skip=("compile",)),
        keyword(
            "compile_modes",
            typer.Option(
                "off",
                "--compile-modes",
                help="torch.compile settings of the training benchmark, one run each: off, "
                "on or off,on",
            ),
            str,
        ),
        *options_parameters(SuiteOptions),
        keyword(
            "out_dir",
            typer.Option(
                Path("results/bench"), "--out-dir", help="folder of the NAME_DEVICE.h5 files"
            ),
            Path,
        ),
        keyword("quiet", typer.Option(False, "--quiet", "-q", help="no progress output"), bool),
    ],
)


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _switch(mode: str) -> bool:
    if mode not in SWITCHES:
        raise ConfigError(f"--compile-modes takes off, on or off,on, got {mode!r}")
    return SWITCHES[mode]
