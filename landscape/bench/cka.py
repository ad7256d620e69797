"""The cost of a CKA matrix over every layer group of a model: its time against the forward
passes alone (ratio), its peak memory as the number of examples grows (flat, since only one
batch lives at a time), and the same matrix from the ``torch-cka`` package side by side.

Each example count is measured in a fresh process, so that peak memory (CUDA's allocator
on a GPU, the process's peak RSS on a CPU) belongs to that measurement alone."""

from __future__ import annotations

import functools
import multiprocessing
import resource
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune.data import get_dataset
from finetune.errors import ConfigError
from finetune.models import create_model
from finetune.result_files import write_result
from finetune.runtime import Runtime
from landscape.bench.options import BENCH_DATA, BenchOptions, device_description
from landscape.bench.twins import model_prep, random_twins
from probes.activations import group_layers, named_layers
from probes.similarity import cka_matrix

REPEATS = 3
CKA_BATCH = 128


@dataclass(frozen=True)
class CKABenchRow:
    examples: int
    forward_seconds: float
    cka_seconds: float
    peak_mb: float

    @property
    def ratio(self) -> float:
        return self.cka_seconds / self.forward_seconds


@dataclass(frozen=True)
class TorchCKAComparison:
    """Ours and torch-cka on the same layers (module outputs) and the same batches."""

    examples: int
    layers: list[str]
    ours_seconds: float
    theirs_seconds: float
    max_abs_difference: float
    ours: np.ndarray
    theirs: np.ndarray


@dataclass(frozen=True)
class CKABench:
    model: str
    device: str
    device_name: str
    precision: str
    image_size: int
    batch_size: int
    layers: int
    peak_memory: str
    rows: list[CKABenchRow]
    torch_cka: TorchCKAComparison | None

    def table(self) -> str:
        lines = [
            f"CKA matrix of {self.layers}x{self.layers} layer groups of {self.model} @ "
            f"{self.image_size}px, batch {self.batch_size}, {self.precision}, "
            f"{self.device_name} ({self.device})",
            f"{'examples':>9s}{'forward s':>11s}{'CKA s':>9s}{'CKA/fwd':>9s}"
            f"{'peak MB':>10s}  ({self.peak_memory})",
        ]
        for r in self.rows:
            lines.append(
                f"{r.examples:>9d}{r.forward_seconds:>11.3f}{r.cka_seconds:>9.3f}"
                f"{r.ratio:>9.2f}{r.peak_mb:>10.1f}"
            )
        c = self.torch_cka
        if c is None:
            lines.append("torch-cka: not installed (pip install torch-cka), no comparison")
        else:
            lines.append(
                f"same {len(c.layers)}x{len(c.layers)} matrix on {c.examples} examples "
                f"({', '.join(c.layers)}): landscape {c.ours_seconds:.3f} s, torch-cka "
                f"{c.theirs_seconds:.3f} s ({c.theirs_seconds / c.ours_seconds:.1f}x), "
                f"max |difference| {c.max_abs_difference:.1e}"
            )
        return "\n".join(lines)


def bench_cka(
    options: BenchOptions = BenchOptions(),
    *,
    examples: Sequence[int] = (256, 1024, 4096),
    compare: bool = True,
    out: Path | None = None,
) -> CKABench:
    """Measure each example count in its own process, then torch-cka at the smallest. The
    batch is the CKA minibatch (default 128); the models are not compiled."""
    if not examples or min(examples) < 1:
        raise ConfigError(f"--cka-examples takes positive counts, got {list(examples)}")
    runtime = options.runtime(compiles=False)
    batch_size = options.batch(CKA_BATCH)
    layers = len(group_layers(create_model(options.model, 10, options.image_size)))
    spec = dict(
        options=replace(options, device=str(runtime.device)),
        batch_size=batch_size,
    )
    context = multiprocessing.get_context("spawn")
    rows = []
    for n in examples:
        with context.Pool(1) as pool:
            rows.append(CKABenchRow(**pool.apply(_measure, ({**spec, "examples": n},))))
    comparison = None
    if compare and _has_torch_cka():
        with context.Pool(1) as pool:
            comparison = TorchCKAComparison(
                **pool.apply(_compare_torch_cka, ({**spec, "examples": min(examples)},))
            )
    described = device_description(runtime)
    result = CKABench(
        model=options.model,
        device=str(described["device"]),
        device_name=str(described["device_name"]),
        precision=str(described["precision"]),
        image_size=options.image_size,
        batch_size=batch_size,
        layers=layers,
        peak_memory="CUDA allocator peak" if runtime.device.type == "cuda" else "process RSS",
        rows=rows,
        torch_cka=comparison,
    )
    if out is not None:
        _write(Path(out), result, described)
    return result


def _batches(
    spec: dict[str, Any], runtime: Runtime, model: torch.nn.Module
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``examples`` images of synthetic:source (cycled past its 10,000), moved to the device
    one batch at a time, so memory does not depend on the count."""
    prep = model_prep(model, runtime)
    images = _images(spec["options"].image_size)
    order = torch.arange(spec["examples"]) % len(images)
    for chunk in order.split(spec["batch_size"]):
        x = prep(images[chunk].to(runtime.device, non_blocking=True))
        yield x, x


@functools.cache
def _images(image_size: int) -> torch.Tensor:
    return get_dataset(BENCH_DATA, "train", image_size=image_size).tensors()[0]


def _best_of(repeats: int, runtime: Runtime, work: Callable[[], object]) -> float:
    """The fastest of ``repeats`` timed calls of ``work``, after one untimed warm-up call."""
    work()
    times = []
    for _ in range(repeats):
        runtime.synchronize()
        start = time.perf_counter()
        work()
        runtime.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def _measure(spec: dict[str, Any]) -> dict[str, float]:
    """Child process: forward-only time, CKA time and peak memory at one example count."""
    options = spec["options"]
    runtime = options.runtime(compiles=False)
    a, b = random_twins(options.model, 10, options.image_size, runtime)
    layers_a, layers_b = group_layers(a), group_layers(b)

    def forward() -> None:
        for x, y in _batches(spec, runtime, a):
            with runtime.autocast():
                a(x)
                b(y)

    def cka() -> None:
        cka_matrix(a, b, _batches(spec, runtime, a), layers_a, layers_b, runtime=runtime)

    forward_seconds = _best_of(REPEATS, runtime, forward)
    if runtime.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(runtime.device)
    cka_seconds = _best_of(REPEATS, runtime, cka)
    if runtime.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(runtime.device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return dict(
        examples=spec["examples"],
        forward_seconds=forward_seconds,
        cka_seconds=cka_seconds,
        peak_mb=peak,
    )


@torch.no_grad()
def _compare_torch_cka(spec: dict[str, Any]) -> dict[str, Any]:
    """Child process: the matrix over the model's feature modules and its classifier, by
    landscape and by torch-cka, on the same batches in float32."""
    import warnings

    import torch_cka.cka
    from torch.utils.data import DataLoader, TensorDataset

    torch_cka.cka.tqdm = lambda iterable, **kwargs: iterable
    options = replace(spec["options"], precision="fp32", channels_last="off")
    runtime = options.runtime(compiles=False)
    a, b = random_twins(options.model, 10, options.image_size, runtime)
    names = [info["module"] for info in a.feature_info] + [_classifier_name(a)]
    layers_a, layers_b = named_layers(a, names), named_layers(b, names)
    ours: list[np.ndarray] = []
    ours_seconds = _best_of(
        REPEATS,
        runtime,
        lambda: ours.append(
            cka_matrix(a, b, _batches(spec, runtime, a), layers_a, layers_b, runtime=runtime)
        ),
    )
    inputs = torch.cat([x for x, _ in _batches(spec, runtime, a)])
    loader = DataLoader(TensorDataset(inputs), batch_size=spec["batch_size"])
    theirs: list[np.ndarray] = []

    def torch_cka_matrix() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tool = torch_cka.CKA(a, b, "a", "b", names, names, device=str(runtime.device))
            tool.compare(loader)
        theirs.append(tool.export()["CKA"].double().cpu().numpy())
        for module in (*a.modules(), *b.modules()):
            module._forward_hooks.clear()

    theirs_seconds = _best_of(REPEATS, runtime, torch_cka_matrix)
    return dict(
        examples=spec["examples"],
        layers=names,
        ours_seconds=ours_seconds,
        theirs_seconds=theirs_seconds,
        max_abs_difference=float(np.max(np.abs(ours[-1] - theirs[-1]))),
        ours=ours[-1],
        theirs=theirs[-1],
    )


def _classifier_name(model: torch.nn.Module) -> str:
    head = model.get_classifier()
    return next(name for name, module in model.named_modules() if module is head)


def _has_torch_cka() -> bool:
    try:
        import torch_cka  # noqa: F401
    except ImportError:
        return False
    return True


def _write(out: Path, result: CKABench, described: dict[str, Any]) -> None:
    datasets: dict[str, Any] = {
        f"scaling/{key}": np.array([asdict(r)[key] for r in result.rows])
        for key in ("examples", "forward_seconds", "cka_seconds", "peak_mb")
    }
    summary: dict[str, Any] = {"ratio_at_most_examples": result.rows[-1].ratio}
    c = result.torch_cka
    if c is not None:
        datasets.update(
            {"torch_cka/layers": c.layers, "torch_cka/ours": c.ours, "torch_cka/theirs": c.theirs}
        )
        summary.update(
            torch_cka_examples=c.examples,
            ours_seconds=c.ours_seconds,
            torch_cka_seconds=c.theirs_seconds,
            max_abs_difference=c.max_abs_difference,
        )
    write_result(
        out,
        "bench_cka",
        datasets,
        attrs={
            "model": result.model,
            "image_size": result.image_size,
            "batch_size": result.batch_size,
            "precision": result.precision,
            "layers": result.layers,
            "peak_memory": result.peak_memory,
            "device": described,
        },
        summary=summary,
    )
