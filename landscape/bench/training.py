"""Training throughput of the engine against a plain PyTorch loop on the same model, data,
batch and precision: the engine's overhead as a ratio. Augmentation is off in both, so the
difference is what the engine adds per step (seeding, schedule, metrics, checkpoints). The
data is synthetic:source unless another dataset spec of the registry is given (``--data``);
both loops train on its training split at the bench's image size."""

from __future__ import annotations

import platform
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from finetune import engine
from finetune.config import RunConfig, build_config
from finetune.data import dataset_options, get_dataset
from finetune.data.augment import BatchPrep
from finetune.data.imageset import ImageSet
from finetune.errors import ConfigError, UnknownDatasetError
from finetune.models import classifier_keys, create_model
from finetune.regularisers.penalties import Bucket, add_to_gradients
from finetune.result_files import write_result
from finetune.runtime import Runtime, resolve_runtime
from landscape.bench.options import BENCH_DATA, DATA_FLAG, BenchOptions, device_description

TRAIN_BATCH = 64


@dataclass(frozen=True)
class TrainBench:
    model: str
    data: str
    device: str
    device_name: str
    precision: str
    channels_last: bool
    compile: bool
    image_size: int
    batch_size: int
    steps: int
    engine_images_per_s: float
    plain_images_per_s: float

    @property
    def ratio(self) -> float:
        """Engine throughput over plain-loop throughput (1.0 means no overhead)."""
        return self.engine_images_per_s / self.plain_images_per_s

    def table(self) -> str:
        rows = [
            ("device", f"{self.device_name} ({self.device})"),
            (
                "model",
                f"{self.model} @ {self.image_size}px, batch {self.batch_size}, "
                f"{self.precision}{', channels_last' if self.channels_last else ''}"
                f"{', compiled' if self.compile else ''}",
            ),
            ("data", f"{self.data}, training split"),
            ("plain loop", f"{self.plain_images_per_s:,.0f} images/s"),
            ("engine", f"{self.engine_images_per_s:,.0f} images/s"),
            ("engine / plain", f"{self.ratio:.3f}"),
        ]
        return "\n".join(f"{k:<16s}{v}" for k, v in rows)


def bench_train(
    options: BenchOptions = BenchOptions(),
    *,
    steps: int = 60,
    data: str = BENCH_DATA,
    data_root: str | Path = "data",
    download: bool = False,
    out: Path | None = None,
) -> TrainBench:
    """Time ``steps`` training steps of each loop after one warm-up epoch of each, on the
    training split of the dataset spec ``data`` (read from ``data_root``, downloaded when
    ``download``) at ``options.image_size``. An epoch holds ``steps`` batches when the
    split has that many images, else the whole split."""
    batch_size = options.batch(TRAIN_BATCH)
    per_class = train_per_class(options, steps, data, data_root, download)
    overrides = dict(
        model=options.model,
        data=data,
        data_root=str(data_root),
        download=download,
        image_size=options.image_size,
        train_per_class=per_class,
        batch_size=batch_size,
        epochs=2,
        augment=False,
        device=options.device,
        precision=options.precision,
        channels_last=options.channels_last,
        compile=options.compile,
        log_every=max(20, steps),
        l2=0.0,
        device_data="on",
    )
    config = build_config("pretrain", {}, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        result = engine.train(config, Path(tmp) / "run", command="bench")
        record = engine_throughput(Path(tmp) / "run")
    runtime = resolve_runtime(config.train)
    plain = plain_loop_throughput(config, steps)
    bench = TrainBench(
        model=options.model,
        data=data,
        device=str(runtime.device),
        device_name=_device_name(runtime),
        precision="bf16" if runtime.bf16 else "fp32",
        channels_last=runtime.channels_last,
        compile=runtime.compile,
        image_size=options.image_size,
        batch_size=batch_size,
        steps=result.summary["steps"] // 2,
        engine_images_per_s=record,
        plain_images_per_s=plain,
    )
    if out is not None:
        values = asdict(bench)
        write_result(
            out,
            "bench_train",
            {},
            attrs={"config": config.to_dict(), "device": device_description(runtime)},
            summary={**values, "ratio": bench.ratio},
        )
    return bench


def train_per_class(
    options: BenchOptions,
    steps: int,
    data: str = BENCH_DATA,
    data_root: str | Path = "data",
    download: bool = False,
) -> int:
    """Training images per class of the benchmark's epochs: ``steps`` batches' worth (at
    least 2, at most what the smallest class of the training split has); a ConfigError
    naming the flag when ``steps`` is not positive, the spec is not one of the registry's
    or its training split does not fill one batch. ``run_benchmarks`` calls it before any
    benchmark runs."""
    if steps < 1:
        raise ConfigError(f"--train-steps must be positive, got {steps}")
    batch_size = options.batch(TRAIN_BATCH)
    train_set = _train_split(data, data_root, download, options.image_size)
    return _per_class(train_set, data, batch_size * steps, batch_size)


def _train_split(data: str, data_root: str | Path, download: bool, image_size: int) -> ImageSet:
    """The whole training split of ``data`` at ``image_size`` (images are read lazily), to
    size the benchmark by; errors name ``--data``."""
    try:
        return get_dataset(
            data,
            "train",
            data_root=data_root,
            download=download,
            image_size=image_size,
            flag=DATA_FLAG,
        )
    except UnknownDatasetError as err:
        if DATA_FLAG in str(err):
            raise
        raise UnknownDatasetError(f"{DATA_FLAG} {data}: {err}") from None


def _per_class(train_set: ImageSet, data: str, images: int, batch_size: int) -> int:
    """Training images per class for an epoch of about ``images`` images (at least 2, at
    most what the smallest class has), checked to fill one batch."""
    smallest = int(np.bincount(train_set.targets, minlength=train_set.num_classes).min())
    per_class = min(max(2, -(-images // train_set.num_classes)), smallest)
    if per_class * train_set.num_classes < batch_size:
        raise ConfigError(
            f"{DATA_FLAG} {data} gives {per_class * train_set.num_classes} training images "
            f"({per_class} in each of {train_set.num_classes} classes), fewer than one "
            f"--batch-size {batch_size} batch"
        )
    return per_class


def engine_throughput(run: Path) -> float:
    """Images/s of the last epoch of a run (the first one pays for warm-up and compilation)."""
    with h5py.File(run / "run.h5") as f:
        return float(f["epochs/images_per_s"][-1])


def plain_loop_throughput(config: RunConfig, steps: int) -> float:
    """The textbook loop: data on the device, forward, loss, backward, step."""
    runtime = resolve_runtime(config.train)
    data = get_dataset(
        config.data.spec,
        "train",
        image_size=config.data.image_size,
        **dataset_options(config.data),
    )
    images, labels = (t.to(runtime.device) for t in data.tensors())
    torch.manual_seed(0)
    model = create_model(config.model.name, data.num_classes, data.image_size)
    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model = model.to(runtime.device, memory_format=memory_format).train()
    forward = torch.compile(model) if runtime.compile else model
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.optim.lr, momentum=0.9, fused=runtime.fused or None
    )
    prep = BatchPrep(
        model.pretrained_cfg["mean"],
        model.pretrained_cfg["std"],
        runtime.device,
        augment=False,
        flip=False,
        channels_last=runtime.channels_last,
    )
    bs = config.train.batch_size
    n_batches = len(labels) // bs

    def step(i: int) -> None:
        sl = slice((i % n_batches) * bs, (i % n_batches + 1) * bs)
        with runtime.autocast():
            logits = forward(prep(images[sl]))
        loss = F.cross_entropy(logits.float(), labels[sl])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for i in range(n_batches):
        step(i)
    runtime.synchronize()
    start = time.perf_counter()
    for i in range(steps):
        step(i)
    runtime.synchronize()
    return steps * bs / (time.perf_counter() - start)


@dataclass(frozen=True)
class RegBench:
    model: str
    device_name: str
    precision: str
    image_size: int
    batch_size: int
    steps: int
    tensors: int
    seconds_none: float
    seconds_fused: float
    seconds_explicit: float

    def table(self) -> str:
        rows = [
            ("device", self.device_name),
            (
                "model",
                f"{self.model} @ {self.image_size}px, batch {self.batch_size}, "
                f"{self.precision}; l2sp on {self.tensors} tensors",
            ),
            ("no regulariser", f"{1000 * self.seconds_none:.2f} ms/step"),
            (
                "l2sp, fused",
                f"{1000 * self.seconds_fused:.2f} ms/step  "
                f"(x{self.seconds_fused / self.seconds_none:.3f})",
            ),
            (
                "l2sp in loss",
                f"{1000 * self.seconds_explicit:.2f} ms/step  "
                f"(x{self.seconds_explicit / self.seconds_none:.3f})",
            ),
        ]
        return "\n".join(f"{k:<16s}{v}" for k, v in rows)


def bench_regularisers(
    options: BenchOptions = BenchOptions(), *, steps: int = 50, out: Path | None = None
) -> RegBench:
    """Step time with no regulariser, with ``l2sp`` on every transferred parameter applied
    as the engine does (fused foreach updates of the gradients), and with the common
    implementation that adds the explicit penalty to the loss (a Python sum over tensors).
    The model is not compiled."""
    if steps < 1:
        raise ConfigError(f"--reg-steps must be positive, got {steps}")
    runtime = options.runtime(compiles=False)
    model, image_size = options.model, options.image_size
    batch_size = options.batch(TRAIN_BATCH)
    torch.manual_seed(0)
    net = create_model(model, 10, image_size)
    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    net = net.to(runtime.device, memory_format=memory_format).train()
    head = set(classifier_keys(net))
    named = [(n, p) for n, p in net.named_parameters() if n not in head]
    params = [p for _, p in named]
    w0 = [p.detach().clone() for p in params]
    bucket = Bucket("l2sp", 0.1, 0, 1.0, params, w0, [])
    optimizer = torch.optim.SGD(
        net.parameters(), lr=1e-3, momentum=0.9, fused=runtime.fused or None
    )
    x = torch.randn(batch_size, 3, image_size, image_size, device=runtime.device)
    x = x.contiguous(memory_format=memory_format)
    y = torch.randint(0, 10, (batch_size,), device=runtime.device)

    def step(mode: str) -> None:
        with runtime.autocast():
            loss = F.cross_entropy(net(x).float(), y)
        if mode == "explicit":
            loss = loss + 0.05 * sum(((p - p0) ** 2).sum() for p, p0 in zip(params, w0))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if mode == "fused":
            add_to_gradients([bucket], 0.0)
        optimizer.step()

    def seconds(mode: str) -> float:
        for _ in range(max(3, steps // 10)):
            step(mode)
        runtime.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step(mode)
        runtime.synchronize()
        return (time.perf_counter() - start) / steps

    # Interleave the three so that drift of the machine's speed hits each alike.
    times: dict[str, list[float]] = {"none": [], "fused": [], "explicit": []}
    for _ in range(3):
        for mode in times:
            times[mode].append(seconds(mode))
    bench = RegBench(
        model=model,
        device_name=_device_name(runtime),
        precision="bf16" if runtime.bf16 else "fp32",
        image_size=image_size,
        batch_size=batch_size,
        steps=steps,
        tensors=len(params),
        seconds_none=min(times["none"]),
        seconds_fused=min(times["fused"]),
        seconds_explicit=min(times["explicit"]),
    )
    if out is not None:
        write_result(
            out,
            "bench_reg",
            {},
            attrs={"device": device_description(runtime)},
            summary={
                **asdict(bench),
                "ratio_fused": bench.seconds_fused / bench.seconds_none,
                "ratio_explicit": bench.seconds_explicit / bench.seconds_none,
            },
        )
    return bench


def _device_name(runtime: Runtime) -> str:
    if runtime.device.type == "cuda":
        return torch.cuda.get_device_name(runtime.device)
    return f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
