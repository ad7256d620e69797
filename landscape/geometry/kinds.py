"""The result kinds of the loss-landscape geometry, declared beside their writers
(``finetune.result_kinds``): ``barrier``, ``plane``, ``sharpness`` and ``criticality``.
Imports nothing of the writers, so reading the declarations costs no torch."""

from __future__ import annotations

from finetune.result_kinds import Attribute, Dataset, ResultKind, register_kind
from probes.kinds import COMPARED_RUNS

# Entries are kept dense, one to a line where they fit.
# fmt: off
register_kind(ResultKind(
    "barrier",
    writers=("landscape.geometry.barrier.barrier_between",),
    intro="""\
Written by `landscape barrier RUN_A RUN_B --out F.h5` (`landscape.geometry.barrier.barrier_between`;
plot in `F.png`): loss and error at P evenly spaced points `a` of the straight line
`θ(a) = (1 − a) θ_A + a θ_B` (both ends included) over every parameter and floating-point
buffer (integer buffers such as `num_batches_tracked` keep A's). RUN_B may be `init`
(RUN_A's initial weights). Every point is evaluated on the same examples (in eval mode, the
loss and accuracy of `finetune.evaluation.measure.evaluate`). Two curves when the model has
BatchNorm and `--bn-batches` is not 0:

- `raw`: the running statistics are interpolated like the weights. Its ends are the runs
  themselves, so `raw/loss[0]` and `raw/loss[-1]` equal the runs' own evaluation.
- `bn`: the statistics are re-estimated at every point, both ends included, on the same
  `--bn-batches` training batches (no augmentation, one seeded order; BatchNorm layers in
  train mode, everything else in eval mode): each layer's `running_mean` and `running_var`
  become the mean and unbiased variance of all its inputs over those batches. The curve is
  measured one way from end to end (no jump at the ends), so its ends differ from the runs'
  own evaluation by what re-estimation changes. Runs whose frozen layer groups kept fixed
  BatchNorm statistics get those re-estimated too: read the `raw` curve for them.

The summary's barriers come from `bn` when it exists, else from `raw` (`curve` says
which). For a curve `L(a)`: `*_barrier` is `max_a [L(a) − ((1 − a) L(0) + a L(1))]`, the
height above the straight line between the ends (Entezari et al. 2021; ≥ 0, and 0 for a
convex curve); `*_barrier_mean` is `max_a L(a) − (L(0) + L(1)) / 2`, the peak above the
mean of the ends (the error-barrier height, or instability, of Frankle et al. 2020). The
peak above the larger of the two ends is not stored; it follows from the curves. P = points.""",
    attributes=(
        *COMPARED_RUNS,
        Attribute("model", "timm architecture of both"),
        Attribute("data", "dataset spec the examples came from (default: A's)"),
        Attribute("split", "its split"),
        Attribute("points", "P"),
        Attribute("bn_batches",
                  "training batches of the re-estimation (0: no `bn` curve: turned off, or no "
                  "BatchNorm)"),
        Attribute("bn_examples", "training examples in those batches"),
        Attribute("batch_size", "examples per batch (evaluation and re-estimation)"),
        Attribute("seed",
                  "seed of the example orders (the evaluation subset and the re-estimation "
                  "batches)"),
        Attribute("device", "device description (JSON)"),
    ),
    datasets=(
        Dataset("alpha", "(P,)", "float64", "`a` of each point: 0 (A), ..., 1 (B)"),
        Dataset("raw/loss", "(P,)", "float64",
                "mean cross-entropy with interpolated BatchNorm statistics"),
        Dataset("raw/error", "(P,)", "float64", "1 − accuracy with interpolated statistics"),
        Dataset("bn/loss", "(P,)", "float64",
                "mean cross-entropy with re-estimated statistics (only with "
                "BatchNorm and `bn_batches` > 0)", optional=True),
        Dataset("bn/error", "(P,)", "float64",
                "1 − accuracy with re-estimated statistics (same condition)", optional=True),
    ),
    summary=(
        Attribute("curve", "`bn` or `raw`: the curve of the barriers below"),
        Attribute("examples", "examples evaluated at every point"),
        Attribute("loss_a", "A's own loss (`raw/loss[0]`)"),
        Attribute("loss_b", "B's own loss (`raw/loss[-1]`)"),
        Attribute("error_a", "A's own error"),
        Attribute("error_b", "B's own error"),
        Attribute("loss_barrier", "`max_a [L(a) − ((1 − a) L(0) + a L(1))]` of the loss"),
        Attribute("loss_barrier_at", "the `a` of that maximum (the first, if several)"),
        Attribute("loss_barrier_mean", "`max_a L(a) − (L(0) + L(1)) / 2` of the loss"),
        Attribute("loss_barrier_mean_at", "the `a` of the largest loss"),
        Attribute("error_barrier", "`loss_barrier` of the error curve"),
        Attribute("error_barrier_at", "its `a`"),
        Attribute("error_barrier_mean", "`loss_barrier_mean` of the error curve"),
        Attribute("error_barrier_mean_at", "its `a`"),
        Attribute("raw_loss_barrier", "`loss_barrier` of the `raw` curve"),
        Attribute("raw_error_barrier", "`error_barrier` of the `raw` curve"),
        Attribute("seconds", "wall time of the whole curve"),
    ),
))

register_kind(ResultKind(
    "plane",
    writers=("landscape.geometry.plane.plane_through", "landscape.geometry.plane.plane_around",),
    intro="""\
Written by `landscape plane RUN_A [RUN_B RUN_C] --out F.h5` (contours in `F.png`): loss and
error on an X x Y grid over a plane of weight space. With three runs
(`landscape.geometry.plane.plane_through`), the plane through them (Garipov et al. 2018): origin A,
`e1 = (B − A) / ‖B − A‖`, `e2` = the part of `C − A` orthogonal to `e1`, normalised, with
inner products and norms over the parameters (floating buffers follow the same affine
combination, so each run's point carries its own BatchNorm statistics); the grid covers the
runs' bounding box widened by `margin` times its width (height) on each side. With one run
(`landscape.geometry.plane.plane_around`), two random directions drawn with `seed` and
filter-normalised as in Li et al. 2018 (each filter, i.e. slice along the first dimension, of every
parameter of two or more dimensions is rescaled to the norm of the run's filter; biases, BatchNorm
parameters and buffers do not move, their `ignore='biasbn'`), over `[−span, span]²` with the run at
the origin. BatchNorm statistics are re-estimated at every grid point as for `barrier`
(`bn_batches` 0: not re-estimated). R = runs (3 or 1).

Grids are stored row by row in y: `loss[j, i]` is at `(xcoordinates[i], ycoordinates[j])`.
`xcoordinates`, `ycoordinates`, `train_loss` and `train_acc` repeat the grid under the
names and conventions of the `loss-landscape` code of Li et al. (its `plot_2D.py` contours
`np.meshgrid(x, y)` against them; accuracy in percent), whatever the split measured.""",
    attributes=(
        Attribute("mode", "`through` (three runs) or `around` (one run, random directions)"),
        Attribute("directions", "how the two directions were made, in words"),
        Attribute("runs", "run directories (JSON list, A first)"),
        Attribute("weights", "their weights files (JSON list)"),
        Attribute("config_hashes", "their runs' `config_hash` (JSON list)"),
        Attribute("model", "timm architecture"),
        Attribute("data", "dataset spec the examples came from (default: the first run's)"),
        Attribute("split", "its split"),
        Attribute("grid", "grid points per axis (X = Y)"),
        Attribute("margin",
                  "`through`: border around the runs as a fraction of their extent (NaN for "
                  "`around`)"),
        Attribute("span", "`around`: half-width of the grid (NaN for `through`)"),
        Attribute("seed", "seed of the random directions (`around`) and of the example orders"),
        Attribute("bn_batches", "training batches of the re-estimation (0: none)"),
        Attribute("bn_examples", "training examples in those batches"),
        Attribute("batch_size", "examples per batch"),
        Attribute("device", "device description (JSON)"),
    ),
    datasets=(
        Dataset("xcoordinates", "(X,)", "float64",
                "grid coordinates along `e1` (or the first random direction)"),
        Dataset("ycoordinates", "(Y,)", "float64", "grid coordinates along `e2` (or the second)"),
        Dataset("loss", "(Y, X)", "float64",
                "mean cross-entropy at `(xcoordinates[i], ycoordinates[j])` in `[j, i]`"),
        Dataset("error", "(Y, X)", "float64", "1 − accuracy, same layout"),
        Dataset("train_loss", "(Y, X)", "float64", "`loss` again, under the `loss-landscape` name"),
        Dataset("train_acc", "(Y, X)", "float64",
                "accuracy in percent, `100 (1 − error)`, the `loss-landscape` name"),
        Dataset("runs/labels", "(R,)", "string", "the runs' short names, `RUN:WEIGHTS`"),
        Dataset("runs/x", "(R,)", "float64",
                "each run's x coordinate (`through`: A 0, B `‖B − A‖`, C `⟨C − A, e1⟩`)"),
        Dataset("runs/y", "(R,)", "float64",
                "each run's y coordinate (A and B 0, C `‖C − A − ⟨C − A, e1⟩ e1‖`)"),
    ),
    summary=(
        Attribute("examples", "examples evaluated at every grid point"),
        Attribute("points", "grid points evaluated (X · Y)"),
        Attribute("min_loss", "lowest loss on the grid"),
        Attribute("min_loss_x", "its x"),
        Attribute("min_loss_y", "its y"),
        Attribute("max_loss", "highest loss on the grid"),
        Attribute("min_error", "lowest error on the grid"),
        Attribute("seconds", "wall time of the grid"),
    ),
))

register_kind(ResultKind(
    "sharpness",
    writers=("landscape.geometry.sharpness.sharpness",),
    intro="""\
Written by `landscape sharpness RUN --out F.h5` (`landscape.geometry.sharpness.sharpness`;
bar chart in `F.png`): the curvature of the run's training loss at its weights, the
flatness measures of PyHessian (Yao et al. 2020). The loss is the mean cross-entropy (no
label smoothing, no regulariser) over `--batches` batches of the run's training split (its
subsample; one seeded order, prepared as for evaluation: no augmentation), with the model
in eval mode: BatchNorm uses its running statistics, so the loss is a deterministic
function of the weights, whatever the batching. Nothing forms the Hessian; everything is
Hessian-vector products by double backpropagation (`landscape.geometry.hessian`):

- top eigenvalue: power iteration `v ← Hv / ‖Hv‖` from a Gaussian vector, the Rayleigh
  quotient `v·Hv` reported, until it changes by at most `tol` times its size or
  `iterations` products. It finds the eigenvalue of largest magnitude, which near a
  minimum is the largest one.
- trace: Hutchinson's estimator, the mean of `v·Hv` over `hutchinson_samples` Rademacher
  vectors, with its standard error.

Both for the whole model and for each layer group (`landscape groups`): a group's figures
are those of the Hessian restricted to its parameters, the others fixed (its diagonal
block). The groups' power iterations run beside the whole model's, sharing each pass over
the batches; a group's trace comes from the whole model's samples (`v_g·(Hv)_g`, unbiased
for the block's trace), so the groups' traces sum to the model's sample by sample. Random
vectors come from `seed` on the CPU: the start vectors (whole model, then each group),
then the Rademacher vectors. G = layer groups, S = `hutchinson_samples`.""",
    attributes=(
        Attribute("run", "run directory"),
        Attribute("weights", "its weights file measured (e.g. `final.safetensors`)"),
        Attribute("label", "short name, `RUN:WEIGHTS`"),
        Attribute("config_hash", "`config_hash` of the run"),
        Attribute("model", "timm architecture"),
        Attribute("data", "dataset spec of the training examples (the run's)"),
        Attribute("batch_size", "examples per batch (default: the run's training batch size)"),
        Attribute("iterations", "most power iterations per eigenvalue"),
        Attribute("tol",
                  "relative change of the eigenvalue that stops a power iteration (0: never)"),
        Attribute("hutchinson_samples", "S"),
        Attribute("vectors_per_pass", "Hutchinson vectors sharing one pass over the batches"),
        Attribute("seed", "seed of the examples' order and of the random vectors"),
        Attribute("device", "device description (JSON)"),
    ),
    datasets=(
        Dataset("groups/names", "(G,)", "string", "layer-group names, input to output"),
        Dataset("groups/parameters", "(G,)", "int64", "parameters in each group"),
        Dataset("groups/top_eigenvalue", "(G,)", "float64",
                "top eigenvalue of the group's block of the Hessian"),
        Dataset("groups/eigen_iterations", "(G,)", "int64", "power iterations (products) it took"),
        Dataset("groups/converged", "(G,)", "bool", "whether it met `tol` within `iterations`"),
        Dataset("groups/trace", "(G,)", "float64", "Hutchinson estimate of the block's trace"),
        Dataset("groups/trace_se", "(G,)", "float64", "its standard error (NaN with one sample)"),
        Dataset("hutchinson/samples", "(S, G)", "float64",
                "`v_g·(Hv)_g` of every Rademacher vector `v` and group `g`; a row sums to `v·Hv`"),
    ),
    summary=(
        Attribute("examples", "training examples the loss averages"),
        Attribute("batches", "batches they were cut into"),
        Attribute("loss", "the mean loss at the weights"),
        Attribute("parameters", "parameters of the whole model"),
        Attribute("top_eigenvalue", "top eigenvalue of the whole Hessian"),
        Attribute("eigen_iterations", "power iterations it took"),
        Attribute("converged", "whether it met `tol` within `iterations`"),
        Attribute("trace", "Hutchinson estimate of the whole Hessian's trace"),
        Attribute("trace_se", "its standard error"),
        Attribute("hvps",
                  "Hessian-vector products computed, every group's included: the cost, each "
                  "about two to three gradient evaluations"),
        Attribute("passes",
                  "passes over the batches (a forward pass and a gradient with its graph per "
                  "batch, shared by that pass's products)"),
        Attribute("seconds", "wall time of the estimators"),
        Attribute("seconds_per_hvp", "`seconds / hvps`"),
    ),
))

register_kind(ResultKind(
    "criticality",
    writers=("landscape.geometry.criticality.module_criticality",),
    intro="""\
Written by `landscape criticality RUN [--init-ref REF] --out F.h5`
(`landscape.geometry.criticality.module_criticality`; heatmap in `F.png`): module
criticality (Chatterji, Neyshabur, Sedghi 2019), which Neyshabur, Sedghi, Zhang 2020 use
to ask which layers carry a transfer. A is the run's final weights θ^F, B the weights θ^0
it is rewound toward (`init`: the run's own initial weights; or another run or weights
file of the same architecture and head). For each layer group i, the rewind
`θ_i(a) = (1 − a) θ_i^0 + a θ_i^F` moves the group's parameters and its modules' floating
buffers (BatchNorm statistics), every other tensor at its final value, and is measured at
every `a` of `linspace(0, 1, points)` on a seeded subset of the run's training split
(evaluation preparation), BatchNorm statistics re-estimated at every point as for
`barrier` (`bn_batches` 0: not re-estimated). The criticality of group i is the smallest
`a² ‖θ_i^F − θ_i^0‖² / σ²` over the grid of `a` and σ at which the training error of
`θ_i(a) + N(0, σ² I)` on the group's parameters, averaged over `draws` Gaussian draws,
stays within `epsilon` of the run's own training error; it is 0 when the group at θ_i^0
meets that without noise (then `best_alpha` and `best_sigma` are 0), infinite (and its
`a` and σ NaN) when no grid point meets it. The σ grid is `sigmas` times the group's
root-mean-square final weight `‖θ_i^F‖ / √k_i`; the noise directions are drawn per group
from `seed` and the group's index and are the same at every `a` and σ. The head group is
measured unless θ^0 is the init of a run that started from initial weights (its head is a
freshly drawn one: `head` false). The whole model along the same line, every tensor from
θ^0 to θ^F (the barrier's line on the training split), is stored too; its end at `a = 1`
is the run's own training error, the reference of the constraint. G = layer groups
measured, P = `points`, S = σ values.""",
    attributes=(
        Attribute("run_a", "run directory of the run measured"),
        Attribute("run_b", "run directory of θ^0"),
        Attribute("weights_a", "the run's weights file (θ^F)"),
        Attribute("weights_b", "the weights file of θ^0 (e.g. `init.safetensors`)"),
        Attribute("label_a", "short name of θ^F, `RUN:WEIGHTS`"),
        Attribute("label_b", "short name of θ^0"),
        Attribute("config_hash_a", "`config_hash` of the run"),
        Attribute("config_hash_b", "`config_hash` of θ^0's run"),
        Attribute("model", "timm architecture"),
        Attribute("data", "dataset spec of the training examples (the run's)"),
        Attribute("head", "whether the head group was measured"),
        Attribute("points", "P"),
        Attribute("epsilon", "training error the noisy rewound group may add to the run's own"),
        Attribute("draws", "Gaussian draws averaged at every grid point"),
        Attribute("bn_batches", "training batches of the re-estimation (0: none)"),
        Attribute("bn_examples", "training examples in those batches"),
        Attribute("batch_size", "examples per batch"),
        Attribute("seed", "seed of the examples' order and of the noise"),
        Attribute("device", "device description (JSON)"),
    ),
    datasets=(
        Dataset("alphas", "(P,)", "float64", "the rewind's `a`, 0 (θ_i^0) to 1 (θ_i^F)"),
        Dataset("sigmas", "(S,)", "float64",
                "the σ grid as fractions of each group's rms final weight, ascending"),
        Dataset("groups/names", "(G,)", "string", "layer-group names, input to output"),
        Dataset("groups/parameters", "(G,)", "int64", "parameters in each group, `k_i`"),
        Dataset("groups/distance", "(G,)", "float64",
                "`‖θ_i^F − θ_i^0‖` over the group's parameters"),
        Dataset("groups/weight_rms", "(G,)", "float64", "`‖θ_i^F‖ / √k_i`"),
        Dataset("groups/criticality", "(G,)", "float64",
                "the criticality (0: not critical; inf: beyond the grid)"),
        Dataset("groups/best_alpha", "(G,)", "float64", "the `a` that attains it"),
        Dataset("groups/best_sigma", "(G,)", "float64", "the σ that attains it, in weight units"),
        Dataset("curves/error", "(G, P)", "float64",
                "training error with group `g` at `θ_g(alphas[p])`, no noise"),
        Dataset("curves/loss", "(G, P)", "float64", "its mean cross-entropy"),
        Dataset("whole/error", "(P,)", "float64",
                "training error of the whole model at `(1 − a) θ^0 + a θ^F`"),
        Dataset("whole/loss", "(P,)", "float64", "its mean cross-entropy"),
        Dataset("grid/sigma", "(G, S)", "float64",
                "each group's σ in weight units, `sigmas × weight_rms`"),
        Dataset("grid/error", "(G, P, S)", "float64",
                "mean training error over the draws at `θ_g(a) + N(0, σ² I)`"),
        Dataset("grid/objective", "(G, P, S)", "float64",
                "`a² ‖θ_g^F − θ_g^0‖² / σ²` at every grid point"),
        Dataset("grid/satisfied", "(G, P, S)", "bool",
                "whether `grid/error` is within `epsilon` of the run's training error"),
    ),
    summary=(
        Attribute("examples", "training examples measured at every point"),
        Attribute("final_error",
                  "the run's own training error, measured so (`whole/error` at `a = 1`)"),
        Attribute("final_loss", "its mean cross-entropy"),
        Attribute("initial_error", "training error of θ^0 (`whole/error` at `a = 0`)"),
        Attribute("initial_loss", "its mean cross-entropy"),
        Attribute("most_critical",
                  "name of the group with the largest criticality (empty when no group is "
                  "critical)"),
        Attribute("max_criticality", "its criticality"),
        Attribute("critical_groups", "groups whose criticality is above 0"),
        Attribute("evaluations",
                  "measurements made: `P` for the whole model plus `G · P · (1 + S · draws)`"),
        Attribute("seconds", "wall time of the measurements"),
    ),
))
# fmt: on
