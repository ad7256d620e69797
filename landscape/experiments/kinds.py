"""The result kinds of the experiments, declared beside their writers
(``finetune.result_kinds``): ``shuffle``, the studies' ``plain_transfer``, ``l2sp_sharpness``,
``fit_vs_depth``, ``rules_left_out``, ``out_of_sample``, ``executor_speed`` and
``all_claims_speed``, and the reproduced claims' ``repro``. Imports nothing of the writers,
so reading the declarations costs no torch."""

from __future__ import annotations

from finetune.result_kinds import Attribute, Dataset, ResultKind, register_kind

# Entries are kept dense, one to a line where they fit.
# fmt: off
register_kind(ResultKind(
    "shuffle",
    writers=("landscape.experiments.shuffle.run_shuffle",),
    intro="""\
Written by `landscape shuffle --out F.h5` (`landscape.experiments.shuffle.run_shuffle`): the
block-shuffle experiment of Neyshabur, Sedghi, Zhang 2020. The target's images are cut into b x
b-pixel blocks that are permuted (`--shuffle-scheme fixed`: one permutation for every image, train
and test), and the same recipe is fine-tuned from the pre-trained init and from random init
at every block size and seed; each run is a run directory of its own. B = block sizes
(ascending, the image size, i.e. intact, always included), S = seeds.""",
    attributes=(
        Attribute("config",
                  "the base fine-tuning configuration (JSON); each run overrides `block_shuffle` "
                  "and `seed`, and the scratch runs also `init`, `pretrained` and "
                  "`transfer_groups`"),
        Attribute("model", "timm architecture name"),
        Attribute("data", "dataset spec"),
        Attribute("init",
                  "the pre-trained init: a run directory or weights file, or `timm pretrained "
                  "MODEL`"),
        Attribute("scheme", "`fixed` or `random` (`shuffle_scheme`)"),
        Attribute("image_size", "image side in pixels (the intact block size)"),
    ),
    datasets=(
        Dataset("block_sizes", "(B,)", "int64",
                "block sides in pixels, ascending; the last is the image size (intact)"),
        Dataset("seeds", "(S,)", "int64", "the runs' master seeds"),
        Dataset("acc_pretrained", "(B, S)", "float64",
                "test accuracy of the run fine-tuned from the pre-trained init"),
        Dataset("acc_scratch", "(B, S)", "float64",
                "test accuracy of the run trained from random init"),
        Dataset("gap", "(B,)", "float64",
                "mean over seeds of `acc_pretrained` minus mean of `acc_scratch`"),
        Dataset("runs_pretrained", "(B, S)", "string", "run directories of the pre-trained runs"),
        Dataset("runs_scratch", "(B, S)", "string", "run directories of the random-init runs"),
    ),
    summary=(
        Attribute("gap_intact", "`gap` at the image size (intact images): what transfer buys"),
        Attribute("gap_smallest_block",
                  "`gap` at the smallest block size: what is left without reusable features"),
        Attribute("pretrained_intact",
                  "mean test accuracy from the pre-trained init on intact images"),
        Attribute("scratch_intact", "mean test accuracy from random init on intact images"),
    ),
))

register_kind(ResultKind(
    "plain_transfer",
    writers=("landscape.experiments.studies.plain_transfer.plain_transfer",),
    intro="""\
Written by `landscape study plain_transfer` into `OUT/plain_transfer.h5`
(`landscape.experiments.studies.plain_transfer.plain_transfer`): the synthetic pair's
transfer effect measured with a plain PyTorch loop instead of the engine. Each row pre-trains
test_resnet on synthetic:source for its epochs with its seed (sources shared between rows of
the same epochs and seed) and fine-tunes it, and a random-init twin, on 10 images per class of
synthetic:near and of synthetic:far with its learning rate and epochs. N = rows, T = targets,
I = inits.""",
    attributes=(
        Attribute("model", "timm architecture"),
        Attribute("image_size", "image side in pixels"),
        Attribute("shots", "training images per class of each target"),
        Attribute("threads", "torch threads the study ran with"),
        Attribute("quick", "whether this is the CI-sized version"),
    ),
    datasets=(
        Dataset("settings/source_epochs", "(N,)", "int64", "epochs of the row's source"),
        Dataset("settings/seed", "(N,)", "int64", "the row's seed (source, data draw, heads)"),
        Dataset("settings/lr", "(N,)", "float64", "the fine-tuning learning rate"),
        Dataset("settings/epochs", "(N,)", "int64", "the fine-tuning epochs"),
        Dataset("source_test_acc", "(N,)", "float64", "the source's test accuracy"),
        Dataset("pretrain_seconds", "(N,)", "float64", "wall time of the source's pre-training"),
        Dataset("targets", "(T,)", "string", "`near`, `far`"),
        Dataset("inits", "(I,)", "string", "`pretrained`, `scratch`"),
        Dataset("test_acc", "(N, T, I)", "float64", "test accuracy after fine-tuning"),
    ),
    summary=(Attribute("rows", "N"),),
))

register_kind(ResultKind(
    "l2sp_sharpness",
    writers=("landscape.experiments.studies.l2sp_sharpness.l2sp_sharpness",),
    intro="""\
Written by `landscape study l2sp_sharpness [--pair real]` into `OUT/l2sp_sharpness.h5`
(`landscape.experiments.studies.l2sp_sharpness.l2sp_sharpness`): whether L2-SP's minima are
flatter or sharper than plain L2's on the same target. The L2-SP claim's runs of the pair's
near target at 10 images per class (quick: 5) under `--l2 5e-4` and under `--preset l2sp`,
one per seed (a seed also draws the training subset, so the two regularisers of one seed are
paired), reused when the claim trained them; for each, the sharpness of its final training
loss (`landscape sharpness`'s defaults; quick: a few products) and its test accuracy.
R = regularisers, S = seeds.""",
    attributes=(
        Attribute("pair", "the pair of source and targets"),
        Attribute("model", "timm architecture of every run"),
        Attribute("target", "the near target's dataset spec"),
        Attribute("per_class", "training images per class"),
        Attribute("epochs", "epochs of every run (the claim's fixed step budget)"),
        Attribute("quick", "whether this is the CI-sized version"),
        Attribute("sharpness",
                  "the sharpness options: `batches`, `iterations`, `tol`, `hutchinson_samples`, "
                  "`seed` (JSON)"),
    ),
    datasets=(
        Dataset("regularisers", "(R,)", "string", "`l2`, `l2sp`"),
        Dataset("seeds", "(S,)", "int64", "the runs' seeds (and split seeds)"),
        Dataset("runs", "(R, S)", "string", "each run's directory"),
        Dataset("top_eigenvalue", "(R, S)", "float64",
                "the top eigenvalue of the Hessian of the run's training loss"),
        Dataset("trace", "(R, S)", "float64", "Hutchinson's estimate of the Hessian's trace"),
        Dataset("trace_se", "(R, S)", "float64", "that estimate's standard error"),
        Dataset("test_acc", "(R, S)", "float64", "the run's test accuracy"),
    ),
    summary=(
        Attribute("runs", "R x S"),
        Attribute("seconds", "wall time of the study (runs already there are reused)"),
    ),
))

register_kind(ResultKind(
    "fit_vs_depth",
    writers=("landscape.experiments.studies.fit_vs_depth.fit_vs_depth",),
    intro="""\
Written by `landscape study fit_vs_depth [--pair real]` into `OUT/fit_vs_depth.h5`
(`landscape.experiments.studies.fit_vs_depth.fit_vs_depth`): whether the fit measures of the
pair's source rank the freezing depth of the pair's committed depth claim (`OUT/depth.h5`).
For each target the fit of group K-1 (measured with the depth runs' recipe, cross-validated;
the BN distance negated, so that larger is a better fit for every measure) is set against
the mean test accuracy with the first K groups frozen, K = 1 .. G-1: Spearman's rho and its
two-sided permutation p-value (2,000 shuffles) per target and pooled over the targets and K.
T = targets, K = frozen depths 1 .. G-1.""",
    attributes=(
        Attribute("pair", "the pair of source and targets"),
        Attribute("source", "the source run whose fit was measured"),
        Attribute("measures", "`knn_acc`, `linear_acc`, `group_logme`, `bn_distance` (JSON list)"),
    ),
    datasets=(
        Dataset("targets", "(T,)", "string", "the target dataset specs"),
        Dataset("roles", "(T,)", "string", "their rows in the depth claim's file"),
        Dataset("accuracy", "(T, K)", "float64",
                "the depth claim's mean test accuracy at K = 1 .. G-1"),
        Dataset("scores/knn_acc", "(T, K)", "float64", "kNN accuracy of group K-1"),
        Dataset("scores/linear_acc", "(T, K)", "float64", "linear-probe accuracy of group K-1"),
        Dataset("scores/group_logme", "(T, K)", "float64", "LogME of group K-1"),
        Dataset("scores/bn_distance", "(T, K)", "float64",
                "minus the BN-statistics distance of group K-1"),
        Dataset("rho/knn_acc", "(T,)", "float64",
                "Spearman's rho of the kNN accuracy with the accuracy, per target"),
        Dataset("rho/linear_acc", "(T,)", "float64", "the same for the linear probe"),
        Dataset("rho/group_logme", "(T,)", "float64", "the same for LogME"),
        Dataset("rho/bn_distance", "(T,)", "float64", "the same for minus the BN distance"),
        Dataset("p_value/knn_acc", "(T,)", "float64", "its permutation p-value"),
        Dataset("p_value/linear_acc", "(T,)", "float64", ""),
        Dataset("p_value/group_logme", "(T,)", "float64", ""),
        Dataset("p_value/bn_distance", "(T,)", "float64", ""),
        Dataset("pooled/knn_acc", "(2,)", "float64",
                "rho and p-value pooled over the targets and K"),
        Dataset("pooled/linear_acc", "(2,)", "float64", ""),
        Dataset("pooled/group_logme", "(2,)", "float64", ""),
        Dataset("pooled/bn_distance", "(2,)", "float64", ""),
    ),
    summary=(
        Attribute("targets", "T"),
    ),
))

register_kind(ResultKind(
    "rules_left_out",
    writers=("landscape.experiments.studies.rules_left_out.rules_left_out",),
    intro="""\
Written by `landscape study rules_left_out [--pair real]` into `OUT/rules_left_out.h5`
(`landscape.experiments.studies.rules_left_out.rules_left_out`): the fit advisor's advice
under every variant of a 3 x 3 grid of its two main constants (`FitRules.shifted_lr` x1, x2,
x5; `FitRules.fit_shift` 0.05, 0.1, 0.2) on every target of the out-of-sample study, trained
with every seed. The leave-one-target-out verdict reads both pairs' files together (docs).
V = variants, T = targets, S = seeds.""",
    attributes=(
        Attribute("pair", "the pair of source and targets"),
        Attribute("model", "timm architecture"),
        Attribute("seeds", "the seeds (JSON list)"),
        Attribute("current", "the current rules' `shifted_lr` and `fit_shift` (JSON)"),
        Attribute("t_needed",
                  "standard errors the mean left-out gain must exceed for the rules to change"),
    ),
    datasets=(
        Dataset("targets", "(T,)", "string", "the targets, as the out-of-sample study names them"),
        Dataset("variants/shifted_lr", "(V,)", "float64",
                "each variant's multiplier of shifted groups"),
        Dataset("variants/fit_shift", "(V,)", "float64", "each variant's BN-shift threshold"),
        Dataset("test_acc", "(V, T, S)", "float64", "test accuracy of each variant's advice"),
    ),
    summary=(
        Attribute("targets", "T"),
        Attribute("variants", "V"),
    ),
))

register_kind(ResultKind(
    "out_of_sample",
    writers=("landscape.experiments.studies.out_of_sample.out_of_sample",),
    intro="""\
Written by `landscape study out_of_sample [--pair real] [--model M] [--data SPECS]` into
`OUT/out_of_sample.h5` (`landscape.experiments.studies.out_of_sample.out_of_sample`; plot
in `out_of_sample.png`): on each target of a pair (or of `--data`, at 10 images per class),
eight ways of choosing the fine-tuning options, each trained with every seed and judged on
test accuracy: the default recipe, the best binary and the non-binary 16-trial searches
(their trials scored by the sweep's default objective for the target, the pick trained on
the recipe's own split), the fit advisor, the probe-guided advice from a pilot, Auto-RGN,
LP-FT and surgical fine-tuning (the best block on validation). T = targets, M = methods,
S = seeds.""",
    attributes=(
        Attribute("pair", "the pair of source and targets"),
        Attribute("model", "timm architecture of every run"),
        Attribute("source",
                  "the pre-trained run given with `--init` (empty: the pair's own source recipe, "
                  "trained once)"),
        Attribute("seeds", "the seeds, in the order of the last axis (JSON list)"),
        Attribute("trials", "trials of each search"),
        Attribute("quick",
                  "whether this is the CI-sized version (16 px, 6 epochs, 4 trials, one seed)"),
        Attribute("rules",
                  "`pilot_fraction`, `lp_fraction` and the bar's `bar_share` and `bar_cost` "
                  "(JSON)"),
    ),
    datasets=(
        Dataset("targets/labels", "(T,)", "string", "each target as the table names it"),
        Dataset("targets/data", "(T,)", "string", "its dataset spec"),
        Dataset("targets/per_class", "(T,)", "int64", "training images per class (0: all)"),
        Dataset("targets/in_sample", "(T,)", "bool",
                "whether the advisors' rules were read from it"),
        Dataset("targets/objective", "(T,)", "string",
                "the searches' objective: `split` or `folds` (`choose_objective`)"),
        Dataset("targets/objective_runs", "(T,)", "int64",
                "runs per search trial (split seeds or folds)"),
        Dataset("targets/objective_note", "(T,)", "string",
                "its message when one split cannot rank (empty otherwise)"),
        Dataset("methods/names", "(M,)", "string",
                "`default`, `binary`, `non_binary`, `fit_advisor`, `probe_guided`, `auto_rgn`, "
                "`lp_ft`, `surgical`"),
        Dataset("methods/labels", "(M,)", "string", "their names in the table"),
        Dataset("test_acc", "(T, M, S)", "float64",
                "test accuracy of each method's pick, trained with each seed"),
        Dataset("cost", "(T, M, S)", "float64",
                "fine-tunings each choice cost (a search: trials x runs per trial, + 1 to "
                "retrain its pick when a trial has several runs)"),
        Dataset("chosen", "(T, M, S)", "string",
                "what each method chose (JSON: the options it set; empty for the default)"),
    ),
    summary=(
        Attribute("targets", "T"),
        Attribute("seconds", "wall time of the study (runs already there are reused)"),
    ),
))

register_kind(ResultKind(
    "repro",
    writers=("landscape.experiments.repro.run_claim",),
    intro="""\
Written by `landscape repro NAME [--quick]` into `results/repro/NAME.h5`
(`landscape.experiments.repro.run_claim`; plot in `NAME.png`): one published claim's
experiment on tiny models. R rows and C columns of numbers, each over S seeds; K plotted
series over P x values.

The plot draws each series' mean with its `plot/spread` as error bars. Numeric settings
(block size, images per class, the interpolation coefficient) are lines over x, ticked at
the x values on a logarithmic axis. Settings that are categories are named by the x label:
`NAME: 0 = A, 1 = B, ...` (as `non_binary` writes `setting: 0 = binary search,
1 = non-binary search`), with `plot/x` the numbers 0, 1, ...; the plot then puts one tick
per category, labelled A, B, ..., and the series' points side by side at each, not joined
by lines.

The `runs/` datasets say how each of the N runs the claim completed (trained, resumed or
reused from its `--runs` folder) was made, each once, in the order the claim asked for
them: two files whose numbers differ can be traced to the runs that differ
(`runs/final_sha256`), and to how those were made. They are optional: the committed claim
files, made before claims recorded their runs, lack them; `--rejudge` keeps them as they
are.""",
    attributes=(
        Attribute("claim", "the claim's name (`landscape repro list`)"),
        Attribute("title", "the claim in one line"),
        Attribute("paper", "what the paper found"),
        Attribute("verdict", "what we measured against the criterion, in one line"),
        Attribute("notes", "caveats of this measurement (JSON list)"),
        Attribute("quick", "whether this is the CI-sized version"),
        Attribute("model", "timm architecture"),
        Attribute("pair",
                  "the source and targets it ran on: `synthetic` or `real` (`landscape repro "
                  "--pair`)"),
        Attribute("xlabel",
                  "the plot's x axis (`NAME: 0 = A, 1 = B, ...` for categorical settings, above)"),
        Attribute("ylabel", "the plot's y axis"),
        Attribute("xlog", "whether the x axis is logarithmic (base 2)"),
    ),
    datasets=(
        Dataset("table/rows", "(R,)", "string", "row labels"),
        Dataset("table/columns", "(C,)", "string", "column labels"),
        Dataset("table/values", "(R, C, S)", "float64",
                "every seed's number (NaN where a cell has fewer seeds)"),
        Dataset("table/mean", "(R, C)", "float64", "mean over seeds"),
        Dataset("table/spread", "(R, C)", "float64",
                "sample standard deviation over seeds (NaN with one seed)"),
        Dataset("plot/x", "(P,)", "float64",
                "x values of the plot (0, 1, ... for categorical settings)"),
        Dataset("plot/labels", "(K,)", "string", "the plotted lines"),
        Dataset("plot/mean", "(K, P)", "float64", "each line's mean"),
        Dataset("plot/spread", "(K, P)", "float64", "each line's standard deviation (error bars)"),
        Dataset("runs/name", "(N,)", "string", "the run directories' names", optional=True),
        Dataset("runs/config_hash", "(N,)", "string", "each run's configuration hash",
                optional=True),
        Dataset("runs/init_sha256", "(N,)", "string",
                "digest of the weights it started from, when it started from `--init` (a "
                "source run), else empty", optional=True),
        Dataset("runs/final_sha256", "(N,)", "string",
                "digest of its final weights' names, dtypes, shapes and values: equal digests, "
                "bit-identical runs", optional=True),
        Dataset("runs/created", "(N,)", "string",
                "when its `run.h5` was written (UTC, ISO 8601): before the claim started (the "
                "file's `created` less `seconds`), the run was there already", optional=True),
        Dataset("runs/commit", "(N,)", "string",
                "the landscape commit it trained with, `-dirty` appended where a Python file "
                "of the checkout differed from it (empty outside a git checkout)",
                optional=True),
        Dataset("runs/torch", "(N,)", "string", "the torch version it trained with",
                optional=True),
        Dataset("runs/device_name", "(N,)", "string", "the GPU's name, or `cpu`",
                optional=True),
        Dataset("runs/threads", "(N,)", "int64", "torch's CPU threads", optional=True),
        Dataset("runs/cpu", "(N,)", "string", "the CPU's model name (empty for a run that "
                "predates the record)", optional=True),
        Dataset("runs/cpu_capability", "(N,)", "string",
                "the instruction set torch's CPU kernels used (empty likewise)", optional=True),
    ),
    summary=(
        Attribute("held", "whether the claim held"),
        Attribute("statistic", "the number the claim is judged on (see `verdict`)"),
        Attribute("threshold", "the value `statistic` had to exceed"),
        Attribute("seconds", "wall time of the experiment"),
    ),
))
register_kind(ResultKind(
    "executor_speed",
    writers=("landscape.experiments.studies.executor_speed.executor_speed",),
    intro="""\
Written by `landscape study executor_speed [--quick]` into `OUT/executor_speed.h5`
(`landscape.experiments.studies.executor_speed.executor_speed`): the wall time of one claim
(`depth`) from scratch on each executor of the machine, back to back, each into an empty
runs folder of its own: serial (the process's threads), serial with one thread,
`--workers N` and a local Ray cluster of N CPUs (N = the cores; one thread per run).
E = executors, in that order.""",
    attributes=(
        Attribute("claim", "the claim timed"),
        Attribute("pair", "the pair of source and targets"),
        Attribute("model", "timm architecture of every run"),
        Attribute("quick", "whether the claim ran at its CI size"),
        Attribute("cores", "the cores of the machine (N)"),
    ),
    datasets=(
        Dataset("executors", "(E,)", "string", "each executor as its flags"),
        Dataset("source_seconds", "(E,)", "float64",
                "wall time of the claim's source on it (one run), in seconds"),
        Dataset("grid_seconds", "(E,)", "float64",
                "wall time of the rest of the claim (its grid, from the source), in seconds"),
        Dataset("speedup", "(E,)", "float64", "serial's wall time of the whole claim over its"),
        Dataset("grid_speedup", "(E,)", "float64", "serial's wall time of the grid over its"),
    ),
    summary=(
        Attribute("runs", "run directories the claim trained (source included)"),
        Attribute("one_thread_identical",
                  "whether the one-thread runs (serial, workers, Ray) hold bit-identical "
                  "weights"),
    ),
))
register_kind(ResultKind(
    "all_claims_speed",
    writers=("landscape.experiments.studies.all_claims_speed.measure_ways",),
    intro="""\
Written by `landscape study all_claims_speed --quick` into `OUT/all_claims_speed.h5`
(`landscape.experiments.studies.all_claims_speed.measure_ways`): the wall time of every
claim from scratch on each way of running them on the machine, back to back, each into an
empty folder of its own: one claim after the other serially (the process's threads),
serially with one thread, one after the other with each claim's grids on `--workers N`,
and side by side (`landscape repro all`) on `--workers N` and on a local Ray cluster of N
CPUs (N = the cores; one thread per run). Without `--quick`, into
`OUT/all_claims_speed_full.h5`: the full size, whose serial ways take hours and whose
committed claim files are that measurement, timed only the fastest way at CI size (side by
side on `--workers N`), its tables compared with those files, and the claim files it wrote
kept in `OUT/from_scratch/`. W = ways, in that order; C = claims.""",
    attributes=(
        Attribute("pair", "the pair of source and targets"),
        Attribute("model", "timm architecture of every run"),
        Attribute("quick", "whether the claims ran at their CI size"),
        Attribute("cores", "the cores of the machine (N)"),
    ),
    datasets=(
        Dataset("ways", "(W,)", "string", "each way of running the claims"),
        Dataset("claims", "(C,)", "string", "the claims, by name"),
        Dataset("seconds", "(W,)", "float64", "wall time of every claim, in seconds"),
        Dataset("claim_seconds", "(W, C)", "float64",
                "each claim's own wall time as its file records it (side by side, waits for "
                "a run another claim trains included), in seconds"),
        Dataset("speedup", "(W,)", "float64", "serial's wall time over its (CI size only)",
                optional=True),
        Dataset("speedup_one_thread", "(W,)", "float64",
                "the wall time of serial with one thread over its (CI size only)",
                optional=True),
        Dataset("same_tables", "(W,)", "bool",
                "whether every claim's table of values equals serial with one thread's (at "
                "full size: the committed claim file's)"),
    ),
    summary=(
        Attribute("runs", "run directories the claims trained"),
    ),
))
# fmt: on
