"""``landscape bench``: the speed measurements under one set of options, one result file
each (``NAME_DEVICE.h5``; the compiled training run ``train_compiled_DEVICE.h5``), and one
table of all their numbers and ratios. The sharpness benchmark runs only when named: it
takes longer than the four others together."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from finetune.data import resolve_spec
from finetune.errors import ConfigError
from landscape.bench.barrier import bench_barrier
from landscape.bench.cka import bench_cka
from landscape.bench.options import BenchOptions, device_description
from landscape.bench.sharpness import bench_sharpness
from landscape.bench.training import (
    BENCH_DATA,
    DATA_FLAG,
    bench_regularisers,
    bench_train,
    train_per_class,
)

BENCHMARKS = ("train", "reg", "cka", "barrier", "sharpness")
# What runs when --only is not given.
DEFAULT_BENCHMARKS = ("train", "reg", "cka", "barrier")


@dataclass(frozen=True)
class BenchKnobs:
    """Each benchmark's own sizes, and the dataset of the training benchmark (``data``, a
    registry spec read from ``data_root``; the others always use synthetic:source); what
    they share is in ``BenchOptions``."""

    train_steps: int = 60
    reg_steps: int = 50
    cka_examples: tuple[int, ...] = (256, 1024, 4096)
    torch_cka: bool = True
    barrier_examples: int = 1000
    barrier_points: int = 25
    bn_batches: int = 4
    repeats: int = 3
    sharpness_batches: int = 4
    sharpness_iterations: int = 20
    hutchinson_samples: int = 20
    data: str = BENCH_DATA
    data_root: str = "data"
    download: bool = False

    def __post_init__(self) -> None:
        """Checked before any benchmark runs, so a bad size never wastes the ones before it."""
        sizes = dict(
            train_steps=self.train_steps,
            reg_steps=self.reg_steps,
            cka_examples=min(self.cka_examples, default=0),
            barrier_examples=self.barrier_examples,
            barrier_points=self.barrier_points - 1,
            bn_batches=self.bn_batches,
            repeats=self.repeats,
            sharpness_batches=self.sharpness_batches,
            sharpness_iterations=self.sharpness_iterations,
            hutchinson_samples=self.hutchinson_samples,
        )
        bad = [name.replace("_", "-") for name, value in sizes.items() if value < 1]
        if bad:
            raise ConfigError(
                f"--{', --'.join(bad)} too small (counts must be positive, points at least 2)"
            )
        resolve_spec(self.data, flag=DATA_FLAG)


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
            f"{d['device']}{gpu}, {d['processor']} CPU with {d['threads']} threads, "
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
    knobs: BenchKnobs = BenchKnobs(),
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
    if "train" not in only and knobs.data != BENCH_DATA:
        raise ConfigError(
            f"{DATA_FLAG} applies to the training benchmark only, which --only leaves out"
        )
    modes = tuple(compile_modes) if compile_modes is not None else (options.compile,)
    if not modes:
        raise ConfigError("give at least one compile mode (off, on)")
    if "train" in only:
        train_per_class(options, knobs.train_steps, knobs.data, knobs.data_root, knobs.download)
    runtime = options.runtime(compiles=False)
    rows: list[BenchRow] = []
    files: list[Path] = []
    for name in (n for n in BENCHMARKS if n in only):
        for compiled in modes if name == "train" else (False,):
            stem = f"{name}_compiled" if compiled else name
            out = Path(out_dir) / f"{stem}_{runtime.device.type}.h5"
            log(f"bench {name}{', compiled' if compiled else ''} -> {out}")
            rows += _RUNNERS[name](replace(options, compile=compiled), knobs, out)
            files.append(out)
    return BenchReport(device_description(runtime), rows, files)


def _train(options: BenchOptions, knobs: BenchKnobs, out: Path) -> list[BenchRow]:
    r = bench_train(
        options,
        steps=knobs.train_steps,
        data=knobs.data,
        data_root=knobs.data_root,
        download=knobs.download,
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


def _reg(options: BenchOptions, knobs: BenchKnobs, out: Path) -> list[BenchRow]:
    r = bench_regularisers(options, steps=knobs.reg_steps, out=out)
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


def _cka(options: BenchOptions, knobs: BenchKnobs, out: Path) -> list[BenchRow]:
    r = bench_cka(options, examples=knobs.cka_examples, compare=knobs.torch_cka, out=out)
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


def _barrier(options: BenchOptions, knobs: BenchKnobs, out: Path) -> list[BenchRow]:
    r = bench_barrier(
        options,
        examples=knobs.barrier_examples,
        points=knobs.barrier_points,
        bn_batches=knobs.bn_batches,
        repeats=knobs.repeats,
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


def _sharpness(options: BenchOptions, knobs: BenchKnobs, out: Path) -> list[BenchRow]:
    r = bench_sharpness(
        options,
        batches=knobs.sharpness_batches,
        iterations=knobs.sharpness_iterations,
        hutchinson_samples=knobs.hutchinson_samples,
        repeats=knobs.repeats,
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


_RUNNERS: dict[str, Callable[[BenchOptions, BenchKnobs, Path], list[BenchRow]]] = {
    "train": _train,
    "reg": _reg,
    "cka": _cka,
    "barrier": _barrier,
    "sharpness": _sharpness,
}


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
