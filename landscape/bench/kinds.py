"""The result kinds of ``landscape bench``, declared beside the benchmarks
(``finetune.result_kinds``): ``bench_train``, ``bench_reg``, ``bench_cka``,
``bench_barrier`` and ``bench_sharpness``. Imports nothing of the benchmarks, so reading
the declarations costs no torch."""

from __future__ import annotations

from finetune.result_kinds import Attribute, Dataset, ResultKind, register_kind

# Entries are kept dense, one to a line where they fit.
# fmt: off
register_kind(ResultKind(
    "bench_train",
    writers=("landscape.bench.training.bench_train",),
    intro="""\
Written by `landscape bench --only train` into `train_DEVICE.h5` (and
`train_compiled_DEVICE.h5`; `landscape.bench.training.bench_train`): training throughput of the
engine against a plain PyTorch loop (same model, data, batch, precision, memory format;
augmentation off in both), on the training split of `--data` (default `synthetic:source`)
at the bench's `--image-size`.""",
    attributes=(
        Attribute("config", "the engine run's configuration (JSON)"),
        Attribute("device", "device description (JSON, [keys above](#benchmark-files))"),
    ),
    summary=(
        Attribute("model", "timm architecture"),
        Attribute("data", "dataset spec trained on (`--data`; its training split)"),
        Attribute("device", "torch device used"),
        Attribute("device_name", "GPU name, or the CPU's"),
        Attribute("precision", "`bf16` or `fp32`"),
        Attribute("channels_last", "whether channels_last memory format was used"),
        Attribute("compile", "whether both loops were compiled with `torch.compile`"),
        Attribute("image_size", "image side in pixels"),
        Attribute("batch_size", "images per step"),
        Attribute("steps", "steps of the engine's timed epoch"),
        Attribute("engine_images_per_s", "the engine's training images/s (second epoch)"),
        Attribute("plain_images_per_s", "the plain loop's training images/s"),
        Attribute("ratio", "engine / plain (1.0 = no overhead)"),
    ),
))

register_kind(ResultKind(
    "bench_reg",
    writers=("landscape.bench.training.bench_regularisers",),
    intro="""\
Written by `landscape bench --only reg` into `reg_DEVICE.h5`
(`landscape.bench.training.bench_regularisers`): step time of one training step with no regulariser,
with `l2sp` on every transferred tensor applied as the engine does (fused foreach updates of
the gradients), and with the penalty added to the loss as a Python sum. Not compiled.""",
    attributes=(
        Attribute("device", "device description (JSON, [keys above](#benchmark-files))"),
    ),
    summary=(
        Attribute("model", "timm architecture"),
        Attribute("device_name", "GPU name, or the CPU and its thread count"),
        Attribute("precision", "`bf16` or `fp32`"),
        Attribute("image_size", "image side in pixels"),
        Attribute("batch_size", "images per step"),
        Attribute("steps", "timed steps per round (best of 3 interleaved rounds)"),
        Attribute("tensors", "parameter tensors under `l2sp` (all but the classifier)"),
        Attribute("seconds_none", "seconds per step without a regulariser"),
        Attribute("seconds_fused", "seconds per step with the engine's fused `l2sp`"),
        Attribute("seconds_explicit", "seconds per step with the penalty added to the loss"),
        Attribute("ratio_fused", "`seconds_fused / seconds_none`"),
        Attribute("ratio_explicit", "`seconds_explicit / seconds_none`"),
    ),
))

register_kind(ResultKind(
    "bench_cka",
    writers=("landscape.bench.cka.bench_cka",),
    intro="""\
Written by `landscape bench --only cka` into `cka_DEVICE.h5` (`landscape.bench.cka.bench_cka`):
the cost of the CKA matrix of all layer groups of a model (two randomly initialised twins on
synthetic:source images). Each example count is measured in a fresh process (best of 3
after a warm-up). R = example counts, L = layers of the torch-cka comparison. The
`torch_cka` datasets and the summary attributes of the comparison are there only when
torch-cka is installed.""",
    attributes=(
        Attribute("model", "timm architecture"),
        Attribute("image_size", "image side in pixels"),
        Attribute("batch_size", "examples per minibatch"),
        Attribute("precision", "`fp32` or `bf16` (autocast)"),
        Attribute("layers", "layer groups in the matrix (it is layers x layers)"),
        Attribute("peak_memory",
                  "what `peak_mb` measures: the CUDA allocator's peak, or the process's peak RSS"),
        Attribute("device", "device description (JSON, [keys above](#benchmark-files))"),
    ),
    datasets=(
        Dataset("scaling/examples", "(R,)", "int64", "example count"),
        Dataset("scaling/forward_seconds", "(R,)", "float64", "both models' forward passes alone"),
        Dataset("scaling/cka_seconds", "(R,)", "float64",
                "the same passes with capture and minibatch CKA"),
        Dataset("scaling/peak_mb", "(R,)", "float64", "peak memory of the measurement, MiB"),
        Dataset("torch_cka/layers", "(L,)", "string",
                "modules compared with torch-cka (the model's feature modules and "
                "its classifier)", optional=True),
        Dataset("torch_cka/ours", "(L, L)", "float64",
                "our matrix on those modules, fp32 forward", optional=True),
        Dataset("torch_cka/theirs", "(L, L)", "float64",
                "torch-cka's matrix on the same batches", optional=True),
    ),
    summary=(
        Attribute("ratio_at_most_examples", "CKA time over forward time at the largest count"),
        Attribute("torch_cka_examples", "examples of the comparison", optional=True),
        Attribute("ours_seconds", "our time for the comparison matrix", optional=True),
        Attribute("torch_cka_seconds", "torch-cka's time for it", optional=True),
        Attribute("max_abs_difference",
                  "largest absolute difference between the two matrices", optional=True),
    ),
))

register_kind(ResultKind(
    "bench_barrier",
    writers=("landscape.bench.barrier.bench_barrier",),
    intro="""\
Written by `landscape bench --only barrier` into `barrier_DEVICE.h5`
(`landscape.bench.barrier.bench_barrier`): the
time of a P-point barrier curve between two randomly initialised twins of a model (seeds
0 and 1) on synthetic:source test images, against P plain evaluation passes over the same
examples (one host synchronisation each); with BatchNorm statistics interpolated, and with
the raw and re-estimated curves (two evaluations and one re-estimation per point). Each is
the best of `repeats` interleaved rounds after one untimed warm-up.""",
    attributes=(
        Attribute("model", "timm architecture"),
        Attribute("image_size", "image side in pixels"),
        Attribute("batch_size", "examples per batch"),
        Attribute("precision", "`fp32` or `bf16` (autocast)"),
        Attribute("repeats", "timed rounds (the best counts)"),
        Attribute("device", "device description (JSON, [keys above](#benchmark-files))"),
    ),
    summary=(
        Attribute("examples", "evaluation examples"),
        Attribute("points", "P"),
        Attribute("bn_batches", "training batches of the re-estimation"),
        Attribute("bn_examples", "training examples in them"),
        Attribute("plain_seconds", "P plain evaluation passes"),
        Attribute("barrier_seconds", "the curve with interpolated statistics"),
        Attribute("barrier_bn_seconds", "the raw and the re-estimated curves"),
        Attribute("ratio", "`barrier_seconds / plain_seconds`"),
        Attribute("ratio_bn", "`barrier_bn_seconds / plain_seconds`"),
    ),
))

register_kind(ResultKind(
    "bench_sharpness",
    writers=("landscape.bench.sharpness.bench_sharpness",),
    intro="""\
Written by `landscape bench --only sharpness` into `sharpness_DEVICE.h5`
(`landscape.bench.sharpness.bench_sharpness`): the sharpness measurement (kind `sharpness`)
of a randomly initialised model (seed 0) on synthetic:source training images, with every
power iteration running all `iterations` (`tol` 0) so that the work is a fixed number of
products, against the best of `repeats` plain gradients of the same loss over the same
batches (after one untimed warm-up); the measurement runs once, after those. Not
compiled.""",
    attributes=(
        Attribute("model", "timm architecture"),
        Attribute("image_size", "image side in pixels"),
        Attribute("batch_size", "examples per batch"),
        Attribute("precision", "`fp32` or `bf16` (autocast)"),
        Attribute("iterations", "power iterations per block (whole model and each group)"),
        Attribute("tol", "0: no early stop"),
        Attribute("hutchinson_samples", "Rademacher vectors of the trace"),
        Attribute("vectors_per_pass", "Hutchinson vectors sharing one pass over the batches"),
        Attribute("repeats", "timed gradients (the best counts)"),
        Attribute("device", "device description (JSON, [keys above](#benchmark-files))"),
    ),
    summary=(
        Attribute("examples", "training examples"),
        Attribute("batches", "batches"),
        Attribute("parameters", "parameters of the model"),
        Attribute("groups", "layer groups"),
        Attribute("hvps", "Hessian-vector products computed"),
        Attribute("passes", "passes over the batches"),
        Attribute("seconds", "wall time of the measurement"),
        Attribute("seconds_per_hvp", "`seconds / hvps`"),
        Attribute("gradient_seconds", "one plain gradient over the same batches"),
        Attribute("hvp_in_gradients",
                  "`seconds_per_hvp / gradient_seconds`: a product's cost in gradient "
                  "evaluations"),
        Attribute("top_eigenvalue",
                  "the whole model's top eigenvalue (a random model's: a check, not a result)"),
        Attribute("trace", "the whole model's trace estimate"),
    ),
))
# fmt: on
