"""The result kinds of choosing and explaining the options, declared beside their writers
(``finetune.result_kinds``): ``sweep``, ``explain`` and ``explain_sweep``. Imports nothing
of the writers, so reading the declarations costs no torch or Optuna."""

from __future__ import annotations

from finetune.result_kinds import Attribute, Dataset, ResultKind, register_kind

# Entries are kept dense, one to a line where they fit.
# fmt: off
register_kind(ResultKind(
    "sweep",
    writers=("landscape.tune.sweep.run_sweep", "landscape.tune.sweep.sweep_report",),
    intro="""\
Written by `landscape sweep --space SPACE.toml --trials N --out OUT` into `OUT/sweep.h5`
(`landscape.tune.sweep.run_sweep`), and rewritten by `landscape sweep --report`
(`landscape.tune.sweep.sweep_report`): every trial of one Optuna study, by trial number. A trial
runs its options K times: once per split seed (`--objective split`, `--splits K`: seeds S,
..., S+K-1) or once per cross-validated fold of the training split (`--objective folds`,
`--folds K`: `--val-fold 0..K-1` of seed S); its objective (`value`) is the mean validation
accuracy of those runs' final weights (`final_eval_acc`), never the test split. Its
standard error (SE) is the binomial one over the runs' N validation images together (N =
K·n for K runs of n), at the accuracy moved half an image towards 1/2,
`sqrt(p'(1 − p')/N)` with `p' = (N·p + 1/2)/(N + 1)`, and with K > 1 at least the runs'
standard deviation / √K. The best trial is, among the complete trials within one SE of the
highest value (the *tied* ones), the one of lowest `eval_loss`, then of lowest number.
T = trials of the study (every state), K = runs per trial, P = searched parameters (the
space's dimensions, per-group ones as `NAME.g`), E = the most epochs any trial reported. A
parameter with `zero = true` is stored as its effective value: 0 where its `NAME:off`
switch was drawn. A study made before `--splits` has K = 1, and one made before
`--objective` scored split seeds; its trials' SE, loss and image count are read from their
run directories when these are still there.""",
    attributes=(
        Attribute("study", "the Optuna study name"),
        Attribute("storage", "the study's database URL (password hidden)"),
        Attribute("space",
                  "the space file's `[base]` and `[space]` tables (JSON), as recorded in the "
                  "study"),
        Attribute("space_file", "path of the space file the study was made with"),
        Attribute("objective", "`final_eval_acc`: what `value` measures"),
        Attribute("direction", "`maximize`"),
        Attribute("objective_kind",
                  "`split` (split seeds) or `folds` (cross-validated folds): the runs of a "
                  "trial, as the study was made (`--objective`, `auto` resolved)"),
        Attribute("splits", "split seeds (runs) per trial under `split`; 1 under `folds`"),
        Attribute("folds", "folds (runs) per trial under `folds`; 0 under `split`"),
        Attribute("resolution",
                  "the smallest difference of validation accuracy the search had to rank "
                  "(`--resolution`; NaN for a study made before it)"),
        Attribute("objective_note",
                  "what the sweep said before its trials when the objective's standard error at "
                  "90% accuracy exceeded the resolution, and what it did about it (empty when it "
                  "did not)"),
    ),
    datasets=(
        Dataset("trials/number", "(T,)", "int64", "Optuna trial numbers, ascending"),
        Dataset("trials/state", "(T,)", "string",
                "`COMPLETE`, `PRUNED` (stopped by the median pruner, or its run diverged), "
                "`FAIL` (raised, or its worker died: then retried as a new trial), `RUNNING` or "
                "`WAITING` (queued)"),
        Dataset("trials/value", "(T,)", "float64",
                "final validation accuracy of complete trials, the mean over their runs (NaN "
                "otherwise)"),
        Dataset("trials/test_acc", "(T,)", "float64",
                "test accuracy of the runs, their mean (NaN unless complete)"),
        Dataset("trials/seconds", "(T,)", "float64",
                "training seconds of the runs, their sum (NaN unless complete)"),
        Dataset("trials/eval_acc", "(T, E)", "float64",
                "validation accuracy after each evaluated epoch of the first run, as reported to "
                "the pruner (NaN after the last)"),
        Dataset("trials/split_values", "(T, K)", "float64",
                "final validation accuracy of each run, by split seed or fold (NaN unless "
                "complete)"),
        Dataset("trials/value_se", "(T,)", "float64",
                "standard error of `value`, as above (NaN unless complete, or when the run "
                "records no image count)"),
        Dataset("trials/eval_loss", "(T,)", "float64",
                "final validation loss (`final_eval_loss`), the mean over the runs: the "
                "tie-breaker (NaN unless complete)"),
        Dataset("trials/eval_examples", "(T,)", "int64",
                "validation images of the first run (one split, n, or one fold) (0 unless "
                "complete, or when unknown)"),
        Dataset("trials/run", "(T,)", "string",
                "the trial's (first run's) run directory (`OUT/runs/finetune-HASH12`; empty if "
                "it never started)"),
        Dataset("trials/runs", "(T,)", "string",
                "every run's directory, by split seed or fold (a JSON list)"),
        Dataset("trials/params", "(T,)", "string",
                "the Optuna parameters (JSON), `NAME:off` switches included"),
        Dataset("trials/config", "(T,)", "string",
                "the run's complete resolved configuration (JSON, as in its `config.json`)"),
        Dataset("params/names", "(P,)", "string", "searched parameters, in the space file's order"),
        Dataset("params/values", "(T, P)", "float64",
                "each trial's value of each (0 when switched off; NaN for a string choice or one "
                "never drawn)"),
    ),
    summary=(
        Attribute("best_trial",
                  "number of the best complete trial: the tied one of lowest `eval_loss` (-1 if "
                  "none)"),
        Attribute("best_value", "its `value`"),
        Attribute("best_value_se", "its `value_se`"),
        Attribute("tied",
                  "complete trials within one SE of the highest `value`, that one included (1: a "
                  "clear best)"),
        Attribute("best_test_acc", "its test accuracy"),
        Attribute("best_run", "its run directory"),
        Attribute("best_params", "its Optuna parameters (JSON)"),
        Attribute("complete", "trials in state COMPLETE"),
        Attribute("pruned", "trials in state PRUNED"),
        Attribute("fail", "trials in state FAIL"),
        Attribute("running", "trials in state RUNNING"),
        Attribute("waiting", "trials in state WAITING"),
    ),
))

register_kind(ResultKind(
    "explain",
    writers=("landscape.tune.explain.explain_runs",),
    intro="""\
Written by `landscape explain RUN [RUN ...] [--against RUN_B] [--block-shuffle B] --out F.h5`
(`landscape.tune.explain.explain_runs`; bars per layer group in `F.png`): what fine-tuning
did to each layer group of a run against its own initial weights (`probes.change.group_change`),
on `examples` seeded examples of `split` of `data` (default 500 test images of the run's
dataset), in `batches` batches. Per group g: the linear CKA (minibatch, unbiased) between the
initial and the final model's output of the group (the input of the next group; the logits
for the head); the movement `‖θ_g − θ_g^0‖ / ‖θ_g^0‖` over its parameters; and the rewind
cost: the error and mean cross-entropy of the final model with only group g (its parameters
and its modules' BatchNorm statistics) at its initial weights, minus the final model's,
BatchNorm statistics re-estimated in both on `bn_batches` training batches. With one run the
errors (`*_se`) are the delete-one-batch jackknife over the batches (the rewind costs paired:
the same batches with and without the reset; the movement is exact, its error 0); with
several runs (seeds of one recipe) the values are their means and the errors the standard
errors over the runs. Each group's status comes from its rewind error cost r and its error s
(`rules`: `reused_below` 0.02, `rewritten_above` 0.10, `z` 2): `reused` when
r + z·s ≤ reused_below, `rewritten` when r − z·s ≥ rewritten_above, `adapted` when
r − z·s > reused_below otherwise, `unclear` when the interval spans reused_below; `frozen` when
its parameters did not move, `new` when it began as a random draw (the head, groups from
`--transfer-groups` on). G = layer groups, R = runs, P = points on the line to `against`.""",
    attributes=(
        Attribute("runs", "the runs explained (JSON list)"),
        Attribute("config_hashes", "their `config_hash` (JSON list)"),
        Attribute("model", "timm architecture"),
        Attribute("data", "dataset spec of the examples measured"),
        Attribute("split", "the split measured"),
        Attribute("examples", "examples measured"),
        Attribute("batches", "batches they are cut into (the jackknife's groups)"),
        Attribute("bn_batches", "training batches BatchNorm is re-estimated on (0: none)"),
        Attribute("errors",
                  "what the errors are: `jackknife over N batches` or `standard error over R "
                  "runs`"),
        Attribute("rules", "the status thresholds `reused_below`, `rewritten_above`, `z` (JSON)"),
        Attribute("against", "the other run of the basin (empty without `--against`)"),
        Attribute("block_shuffle",
                  "the block size of the shuffle share (0 without `--block-shuffle`)"),
        Attribute("seed", "seed of the examples' order"),
        Attribute("device", "device measured on"),
    ),
    datasets=(
        Dataset("groups/names", "(G,)", "string", "layer-group names, input to output"),
        Dataset("groups/status", "(G,)", "string",
                "reused, adapted, rewritten, unclear, frozen or new"),
        Dataset("groups/cka", "(G,)", "float64",
                "CKA of the group's output with the initial model's"),
        Dataset("groups/cka_se", "(G,)", "float64", "its error"),
        Dataset("groups/movement", "(G,)", "float64", "`‖θ_g − θ_g^0‖ / ‖θ_g^0‖`"),
        Dataset("groups/movement_se", "(G,)", "float64", "its error (0 for one run)"),
        Dataset("groups/rewind_error", "(G,)", "float64",
                "error with the group reset minus the final error (fraction)"),
        Dataset("groups/rewind_error_se", "(G,)", "float64", "its error"),
        Dataset("groups/rewind_loss", "(G,)", "float64", "the same in mean cross-entropy"),
        Dataset("groups/rewind_loss_se", "(G,)", "float64", "its error"),
        Dataset("runs/cka", "(R, G)", "float64", "each run's CKA to init"),
        Dataset("runs/movement", "(R, G)", "float64", "each run's movement"),
        Dataset("runs/rewind_error", "(R, G)", "float64", "each run's rewind error cost"),
        Dataset("runs/rewind_loss", "(R, G)", "float64", "each run's rewind loss cost"),
        Dataset("sentences", "(lines,)", "string", "the explanation in words, as printed"),
        Dataset("basin/alpha", "(P,)", "float64",
                "with `--against`: points `a` of `(1 − a) θ_run + a θ_against`", optional=True),
        Dataset("basin/loss", "(P,)", "float64",
                "mean cross-entropy there, BatchNorm re-estimated at every point", optional=True),
        Dataset("basin/error", "(P,)", "float64", "error there", optional=True),
        Dataset("basin/cka", "(G,)", "float64",
                "each group's output CKA between the two runs", optional=True),
        Dataset("basin/cka_se", "(G,)", "float64", "its jackknife error", optional=True),
        Dataset("shuffle/pretrained", "(R,)", "float64",
                "with `--block-shuffle`: each run's test accuracy", optional=True),
        Dataset("shuffle/random", "(R,)", "float64",
                "its recipe from random init (no initial weights, no L2-SP)", optional=True),
        Dataset("shuffle/pretrained_shuffled", "(R,)", "float64",
                "the run's recipe on block-shuffled images", optional=True),
        Dataset("shuffle/random_shuffled", "(R,)", "float64",
                "the random-init recipe on block-shuffled images", optional=True),
        Dataset("shuffle/share", "(R,)", "float64",
                "(pretrained_shuffled − random_shuffled) / (pretrained − random)", optional=True),
        Dataset("shuffle/share_se", "(R,)", "float64",
                "its delta-method error from the four binomial errors", optional=True),
    ),
    summary=(
        Attribute("reused", "body groups reused"),
        Attribute("adapted", "groups adapted"),
        Attribute("rewritten", "groups rewritten"),
        Attribute("unclear", "groups whose status the data cannot tell"),
        Attribute("frozen", "groups that did not move"),
        Attribute("new", "groups that began as a random draw"),
        Attribute("runs", "R"),
        Attribute("seconds", "wall time"),
        Attribute("loss_barrier",
                  "with `--against`: the linear loss barrier on the line (max of "
                  "the curve above the straight line between its ends)", optional=True),
        Attribute("loss_barrier_se", "its jackknife error over the batches", optional=True),
        Attribute("error_barrier", "the same for the error", optional=True),
        Attribute("error_barrier_se", "its jackknife error", optional=True),
        Attribute("basin",
                  "`one basin` (error barrier + 2 errors ≤ 0.02), `a barrier` (− "
                  "2 errors > 0.02) or `unclear`", optional=True),
        Attribute("shuffle_share",
                  "with `--block-shuffle`: the share of the transfer gain that "
                  "survives (mean over runs, or the one run's)", optional=True),
        Attribute("shuffle_share_se",
                  "its error (SE over runs, or the delta-method error)", optional=True),
    ),
))

register_kind(ResultKind(
    "explain_sweep",
    writers=("landscape.tune.explain_sweep.explain_sweep",),
    intro="""\
Written by `landscape explain --sweep DIR [--study S] [--probe-share 0.25] --out F.h5`
(default `DIR/explain.h5`; `landscape.tune.explain_sweep.explain_sweep`; importances and a
heatmap in `F.png`): why a sweep's best trials won. The importance of every option for the
objective over the complete trials, by Optuna's evaluator (`evaluator`: fANOVA when
scikit-learn is installed, else PED-ANOVA; options every complete trial drew); the
per-group probes of `explain` (CKA to init, movement, rewind cost of the error) of the top
and the bottom `--probe-share` of the complete trials by objective (P trials probed, each
trial's first run), on `examples` seeded images of `split`; and each probe's Spearman
correlation with the objective across the probed trials, with its 95% percentile
bootstrap interval over trials. The sentences give, for the most important options, the
probe and group each moves most and that probe's link to the objective. Only complete
trials are read, so a killed and resumed sweep is explained as it stands. G = layer
groups, P = trials probed.""",
    attributes=(
        Attribute("study", "the study's name"),
        Attribute("storage", "its database URL (password hidden)"),
        Attribute("evaluator", "Optuna's importance evaluator used"),
        Attribute("data", "dataset spec of the probes' images"),
        Attribute("split", "their split"),
        Attribute("examples", "images measured per trial"),
        Attribute("seed", "seed of the images' order and of the bootstrap"),
    ),
    datasets=(
        Dataset("groups/names", "(G,)", "string", "layer-group names, input to output"),
        Dataset("trials/number", "(P,)", "int64", "the probed trials' numbers, best first"),
        Dataset("trials/value", "(P,)", "float64", "their objective"),
        Dataset("trials/run", "(P,)", "string", "the run probed (the trial's first)"),
        Dataset("trials/params", "(P,)", "string", "their drawn options (JSON)"),
        Dataset("sentences", "(lines,)", "string", "the explanation in words, as printed"),
        Dataset("probes/cka", "(P, G)", "float64", "each probed trial's CKA to init per group"),
        Dataset("probes/movement", "(P, G)", "float64", "its movement per group"),
        Dataset("probes/rewind_error", "(P, G)", "float64", "its rewind cost (error) per group"),
        Dataset("objective/cka_rho", "(G,)", "float64",
                "Spearman's rho of the CKA with the objective"),
        Dataset("objective/cka_low", "(G,)", "float64", "its interval's lower end"),
        Dataset("objective/cka_high", "(G,)", "float64", "its upper end"),
        Dataset("objective/movement_rho", "(G,)", "float64", "the same for the movement"),
        Dataset("objective/movement_low", "(G,)", "float64", ""),
        Dataset("objective/movement_high", "(G,)", "float64", ""),
        Dataset("objective/rewind_error_rho", "(G,)", "float64", "the same for the rewind cost"),
        Dataset("objective/rewind_error_low", "(G,)", "float64", ""),
        Dataset("objective/rewind_error_high", "(G,)", "float64", ""),
        Dataset("importance/names", "(options,)", "string",
                "with two or more complete trials: the options, most important "
                "first", optional=True),
        Dataset("importance/values", "(options,)", "float64",
                "their importances (summing to 1)", optional=True),
    ),
    summary=(
        Attribute("complete", "complete trials of the study"),
        Attribute("probed", "P"),
        Attribute("seconds", "wall time"),
    ),
))
# fmt: on
