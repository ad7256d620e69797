"""``landscape bench``: the speed measurements under one set of options, one result file
each (``NAME_DEVICE.h5``; the compiled training run ``train_compiled_DEVICE.h5``), and one
table of all their numbers and ratios. The sharpness benchmark runs only when named: it
takes longer than the four others together."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from finetune.errors import ConfigError
from landscape.bench.barrier import bench_barrier
from landscape.bench.cka import bench_cka
from landscape.bench.options import (
    BENCH_DATA,
    BENCHMARKS,
    DATA_FLAG,
    DEFAULT_BENCHMARKS,
    BenchOptions,
    SuiteOptions,
    device_description,
)
from landscape.bench.sharpness import bench_sharpness
from landscape.bench.training import bench_regularisers, bench_train, train_per_class


@dataclass(frozen=True)
class BenchRow:
    """One line of the table: ``measured`` and ``baseline`` in ``unit``, and their ratio."""

    benchmark: str
    setting: str
    measured: float
    baseline: float
    unit: str
    ratio_of: str

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline


@dataclass(frozen=True)
class BenchReport:
    description: dict[str, object]
    rows: list[BenchRow]
    files: list[Path]

    def table(self) -> str:
        d = self.description
        layout = "channels_last" if d["channels_last"] else "contiguous"
        width = max([len("setting"), *(len(r.setting) for r in self.rows)]) + 2
        gpu = f" ({d['device_name']})" if d["device_name"] != d["device"] else ""
        lines = [
            f"{d['device']}{gpu}, {d['processor']} with {d['threads']} CPU threads, "
            f"torch {d['torch_version']}, CUDA {d['cuda_version']}, {d['precision']}, {layout}",
            f"{'benchmark':<10s}{'setting':<{width}s}{'measured':>10s}{'baseline':>10s}"
            f"{'ratio':>8s}  ratio of (unit)",
        ]
        for r in self.rows:
            lines.append(
                f"{r.benchmark:<10s}{r.setting:<{width}s}{_number(r.measured):>10s}"
                f"{_number(r.baseline):>10s}{r.ratio:>8.3f}  {r.ratio_of} ({r.unit})"
            )
        return "\n".join(lines)


def run_benchmarks(
    options: BenchOptions,
    *,
    only: Sequence[str] = DEFAULT_BENCHMARKS,
    compile_modes: Sequence[bool] | None = None,
    sizes: SuiteOptions = SuiteOptions(),
    out_dir: Path = Path("results/bench"),
    log: Callable[[str], None] = lambda line: None,
) -> BenchReport:
    """Run the benchmarks named in ``only`` (in the order of ``BENCHMARKS``), the training
    one once per entry of ``compile_modes`` (default: ``options.compile`` alone), and write
    each one's file into ``out_dir``."""
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown or not only:
        raise ConfigError(
            f"unknown benchmark(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(BENCHMARKS)}"
        )
    if "train" not in only and sizes.data != BENCH_DATA:
        raise ConfigError(
            f"{DATA_FLAG} applies to the training benchmark only, which --only leaves out"
        )
    modes = tuple(compile_modes) if compile_modes is not None else (options.compile,)
    if not modes:
        raise ConfigError("give at least one compile mode (off, on)")
    if "train" in only:
        train_per_class(options, sizes.train_steps, sizes.data, sizes.data_root, sizes.download)
    runtime = options.runtime(compiles=False)
    rows: list[BenchRow] = []
    files: list[Path] = []
    for name in (n for n in BENCHMARKS if n in only):
        for compiled in modes if name == "train" else (False,):
            stem = f"{name}_compiled" if compiled else name
            out = Path(out_dir) / f"{stem}_{runtime.device.type}.h5"
            log(f"bench {name}{', compiled' if compiled else ''} -> {out}")
            rows += _RUNNERS[name](replace(options, compile=compiled), sizes, out)
            files.append(out)
    return BenchReport(device_description(runtime), rows, files)


def _train(options: BenchOptions, sizes: SuiteOptions, out: Path) -> list[BenchRow]:
    r = bench_train(
        options,
        steps=sizes.train_steps,
        data=sizes.data,
        data_root=sizes.data_root,
        download=sizes.download,
        out=out,
    )
    compiled = ", compiled" if r.compile else ""
    setting = f"{r.model} {r.image_size}px b{r.batch_size} on {r.data}{compiled}"
    ratio_of = "engine / plain loop"
    return [
        BenchRow(
            "train", setting, r.engine_images_per_s, r.plain_images_per_s, "images/s", ratio_of
        )
    ]


def _reg(options: BenchOptions, sizes: SuiteOptions, out: Path) -> list[BenchRow]:
    r = bench_regularisers(options, steps=sizes.reg_steps, out=out)
    base = f"{r.model} {r.image_size}px b{r.batch_size}, l2sp"
    none, ratio_of = 1000 * r.seconds_none, "l2sp / no regulariser"
    return [
        BenchRow(
            "reg",
            f"{base} fused on {r.tensors} tensors",
            1000 * r.seconds_fused,
            none,
            "ms/step",
            ratio_of,
        ),
        BenchRow(
            "reg", f"{base} added to the loss", 1000 * r.seconds_explicit, none, "ms/step", ratio_of
        ),
    ]


def _cka(options: BenchOptions, sizes: SuiteOptions, out: Path) -> list[BenchRow]:
    r = bench_cka(options, examples=sizes.cka_examples, compare=sizes.torch_cka, out=out)
    rows = [
        BenchRow(
            "cka",
            f"{r.layers}x{r.layers} groups, {row.examples} images, peak {row.peak_mb:,.0f} MB",
            row.cka_seconds,
            row.forward_seconds,
            "s",
            "CKA / forward passes",
        )
        for row in r.rows
    ]
    c = r.torch_cka
    if c is not None:
        rows.append(
            BenchRow(
                "cka",
                f"torch-cka, {c.examples} images, max diff {c.max_abs_difference:.1e}",
                c.theirs_seconds,
                c.ours_seconds,
                "s",
                "torch-cka / landscape",
            )
        )
    return rows


def _barrier(options: BenchOptions, sizes: SuiteOptions, out: Path) -> list[BenchRow]:
    r = bench_barrier(
        options,
        examples=sizes.barrier_examples,
        points=sizes.barrier_points,
        bn_batches=sizes.bn_batches,
        repeats=sizes.repeats,
        out=out,
    )
    base = f"{r.points} points, {r.examples} images"
    ratio_of = f"barrier / {r.points} evaluations"
    return [
        BenchRow(
            "barrier", f"{base}, BN interpolated", r.barrier_seconds, r.plain_seconds, "s", ratio_of
        ),
        BenchRow(
            "barrier",
            f"{base}, BN re-estimated on {r.bn_examples} more",
            r.barrier_bn_seconds,
            r.plain_seconds,
            "s",
            ratio_of,
        ),
    ]


def _sharpness(options: BenchOptions, sizes: SuiteOptions, out: Path) -> list[BenchRow]:
    r = bench_sharpness(
        options,
        batches=sizes.sharpness_batches,
        iterations=sizes.sharpness_iterations,
        hutchinson_samples=sizes.hutchinson_samples,
        repeats=sizes.repeats,
        out=out,
    )
    setting = f"{r.hvps} products ({r.groups + 1} blocks), {r.examples} images, {r.seconds:.1f} s"
    ratio_of = "Hessian-vector product / gradient"
    return [
        BenchRow(
            "sharpness",
            setting,
            1000 * r.seconds_per_hvp,
            1000 * r.gradient_seconds,
            "ms",
            ratio_of,
        )
    ]


_RUNNERS: dict[str, Callable[[BenchOptions, SuiteOptions, Path], list[BenchRow]]] = {
    "train": _train,
    "reg": _reg,
    "cka": _cka,
    "barrier": _barrier,
    "sharpness": _sharpness,
}


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
