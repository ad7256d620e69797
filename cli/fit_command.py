"""``landscape fit``: the fit measures of a model's initial weights on a target
(``probes.fit.fit_measures``) with the fine-tuning flags that choose the model, its
weights, the data and how images are prepared; a table, the result file and its plot."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import typer

from cli.common import keyword, user_errors
from cli.options import config_parameters, plain, with_parameters
from finetune.config import SECTIONS, flag_name

# The fine-tuning flags that change what the fit measures see; the others are left out.
_CONFIG_FLAGS = {
    "model", "init", "pretrained", "data", "data_root", "download", "image_size",
    "train_per_class", "val_fraction", "split_seed", "device_data", "workers", "preprocess",
    "device", "precision",
}  # fmt: skip


def fit_command(**values: Any) -> None:
    """Before fine-tuning: per layer group, kNN and linear-probe accuracy of the features
    and the distance of the target's statistics from BatchNorm's; LogME of the penultimate
    features. Writes F.h5 and F.png."""
    from finetune.config import build_config
    from landscape.plots import plot_file
    from probes.fit import fit_measures

    values = plain(values)
    own = {name: values.pop(name) for name in ("k", "examples", "batch_size", "seed", "out")}
    with user_errors():
        config = build_config("finetune", {}, values)
        result = fit_measures(
            config.model,
            config.data,
            device=config.train.device,
            precision=config.train.precision,
            **own,
        )
        png = plot_file(own["out"])
    typer.echo(result.table())
    typer.echo(f"wrote {own['out']} and {png}")


# The options of the measures themselves, shared with ``landscape advise``.
MEASURE_PARAMETERS = [
    keyword("k", typer.Option(10, "--k", help="neighbours of the kNN vote"), int),
    keyword(
        "examples",
        typer.Option(
            None, "--examples", help="at most N examples of each split (seeded; default: all)"
        ),
        int | None,
    ),
]
_PARAMETERS = MEASURE_PARAMETERS + [
    keyword("batch_size", typer.Option(256, "--batch-size", help="examples per forward pass"), int),
    keyword(
        "seed",
        typer.Option(0, "--seed", help="seed of a random init and of the --examples subset"),
        int,
    ),
    keyword("out", typer.Option(Path("results/fit.h5"), "--out", help="result file (.h5)"), Path),
]
_SKIP = tuple(
    flag_name(f)
    for cls in SECTIONS.values()
    for f in fields(cls)
    if flag_name(f) not in _CONFIG_FLAGS
)
with_parameters(fit_command, _PARAMETERS + config_parameters(_SKIP))
