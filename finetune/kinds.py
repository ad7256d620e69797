"""The result kind the engine writes, declared beside it (``finetune.result_kinds``):
``run``, every run directory's ``run.h5``. Imports nothing of the engine, so reading the
declaration costs no torch."""

from __future__ import annotations

from finetune.result_kinds import Attribute, Dataset, ResultKind, register_kind

# Entries are kept dense, one to a line where they fit.
# fmt: off
register_kind(ResultKind(
    "run",
    writers=("finetune.engine.train", "finetune.engine.resume",),
    intro="""\
`run.h5` inside every run directory, written by `finetune.engine.train` and
`finetune.engine.resume` (see [docs/design.md](../docs/design.md) for the whole directory).
Rewritten atomically at every checkpoint, so it is readable while a run trains.
S = number of training steps, E = evaluated epochs (`eval_every`), G = layer groups,
P = kept epochs (`keep_every`), R = epochs begun (with `auto_lr` `rgn`).

`landscape plot RUN/run.h5` draws its learning curves into `RUN/run.png`, four panels on one
epoch axis: the loss (every step's training loss, and per epoch the training mean, the
evaluation split's loss and, once completed, the test loss of the final weights), the
accuracy per epoch (the same three), the learning rate of every step, and each layer
group's relative distance to its initial weights per epoch (log scale, one labelled line
per group; the absolute distance when a group started at zero). A run still training, an
interrupted one or one that failed plots what it recorded (panels of per-epoch numbers say
when no epoch has finished); a file with no step recorded is refused in one line.""",
    summary_note="present once the run has completed",
    attributes=(
        Attribute("config", "the complete resolved configuration (JSON), as in `config.json`"),
        Attribute("config_hash", "SHA-256 of the sorted JSON of `config`"),
        Attribute("model", "timm architecture name"),
        Attribute("data", "dataset spec"),
        Attribute("steps_per_epoch", "optimiser steps per epoch"),
    ),
    datasets=(
        Dataset("steps/loss", "(S,)", "float32",
                "training loss of each step (mean over the batch)"),
        Dataset("steps/lr", "(S,)", "float64",
                "learning rate of each step (before per-group scaling)"),
        Dataset("epochs/epoch", "(E,)", "int64",
                "the evaluated epochs, from 1: every one, or every `eval_every`-th and the last"),
        Dataset("epochs/train_loss", "(E,)", "float64",
                "mean training loss over the epoch's steps"),
        Dataset("epochs/train_acc", "(E,)", "float64",
                "training accuracy over the epoch (augmented images)"),
        Dataset("epochs/eval_loss", "(E,)", "float64",
                "cross-entropy on the evaluation split (`eval_split`)"),
        Dataset("epochs/eval_acc", "(E,)", "float64", "accuracy on the evaluation split"),
        Dataset("epochs/seconds", "(E,)", "float64",
                "wall time of the training steps since the previous row (they sum to the run's)"),
        Dataset("epochs/images_per_s", "(E,)", "float64", "training throughput of the epoch"),
        Dataset("epochs/lr", "(E,)", "float64", "learning rate of the epoch's last step"),
        Dataset("groups/names", "(G,)", "string",
                "layer-group names, input to output (`landscape groups`)"),
        Dataset("groups/distance_to_init", "(E, G)", "float64",
                "`‖w − w0‖` over the group's parameters after each evaluated epoch"),
        Dataset("groups/relative_distance_to_init", "(E, G)", "float64",
                "`‖w − w0‖ / ‖w0‖` after each evaluated epoch"),
        Dataset("penalties/names", "(K,)", "string",
                "the active parameter penalties (`l2`, `l2sp`, `l2sp_fisher`, `l1sp`, `gl_sp`)"),
        Dataset("penalties/values", "(E, K, G)", "float64",
                "each penalty's value per group after each evaluated epoch, strength included "
                "(e.g. `alpha/2 ‖w − w0‖²`)"),
        Dataset("kept/epoch", "(P,)", "int64",
                "the epochs whose weights the run kept in "
                "`epochs/epochK.safetensors` (`keep_every`: every N-th and the "
                "last); only once it has kept one", optional=True),
        Dataset("kept/eval_acc", "(P,)", "float64",
                "evaluation accuracy of each kept epoch's weights (NaN when that "
                "epoch was not evaluated, see `eval_every`); only with "
                "`kept/epoch`", optional=True),
        Dataset("rgn/scale", "(R, G)", "float64",
                "Auto-RGN: at the start of every epoch (evaluated or not), the "
                "mean over each group's trainable tensors of their relative "
                "gradient norm divided by the largest (the factor on their "
                "learning rate; NaN for a group with no tensor trainable in that "
                "epoch); only with `auto_lr` `rgn`", optional=True),
    ),
    summary=(
        Attribute("status", "`completed` or `failed`", optional=True),
        Attribute("epochs", "epochs trained", optional=True),
        Attribute("steps", "optimiser steps taken", optional=True),
        Attribute("final_train_loss", "last epoch's mean training loss", optional=True),
        Attribute("final_eval_loss", "last epoch's evaluation loss", optional=True),
        Attribute("final_eval_acc", "last epoch's evaluation accuracy", optional=True),
        Attribute("best_eval_acc", "best evaluation accuracy over the epochs", optional=True),
        Attribute("test_loss",
                  "cross-entropy of the final weights on the test split", optional=True),
        Attribute("test_acc", "accuracy of the final weights on the test split", optional=True),
        Attribute("train_seconds", "total wall time of the training steps", optional=True),
    ),
))
# fmt: on
