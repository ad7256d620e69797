"""``landscape fit``: the fit measures of a model's initial weights on a target
(``probes.fit.fit_measures``) with the fine-tuning flags that choose the model, its
weights, the data and how images are prepared; a table, the result file and its plot."""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any

import typer

from cli.common import keyword, out_parameter, user_errors
from cli.options import config_parameters, options_parameters, plain, with_parameters
from finetune.config import SECTIONS, RunConfig, flag_name
from probes.cross_validation import DEFAULT_FOLDS
from probes.options import ProbeOptions

# The fine-tuning flags that change what the fit measures see; the others are left out.
_CONFIG_FLAGS = {
    "model", "init", "pretrained", "data", "data_root", "download", "image_size",
    "train_per_class", "val_fraction", "split_seed", "device_data", "workers", "preprocess",
    "device", "precision",
}  # fmt: skip


def fit_command(**values: Any) -> None:
    """Before fine-tuning: per layer group, kNN and linear-probe accuracy of the features
    (cross-validated on the training split), LogME and the distance of the target's
    statistics from BatchNorm's, each with its standard error; LogME of the penultimate
    features. Writes F.h5 and F.png."""
    from finetune.config import build_config
    from landscape.plots import plot_file
    from probes.fit import fit_measures

    values = plain(values)
    k, folds, out = values.pop("k"), values.pop("folds"), values.pop("out")
    given = {name: values.pop(name) for name in FIT_OPTIONS}
    with user_errors():
        config = build_config("finetune", {}, values)
        options = measure_options(config, **given)
        result = fit_measures(config.model, config.data, k=k, folds=folds, options=options, out=out)
        png = plot_file(out)
    typer.echo(result.table())
    typer.echo(f"wrote {out} and {png}")


def measure_options(config: RunConfig, **values: Any) -> ProbeOptions:
    """The probe options of the fit measures: the device and precision of ``config``'s
    own flags, the rest from ``values``."""
    return ProbeOptions(device=config.train.device, precision=config.train.precision, **values)


def probe_parameters(names: tuple[str, ...]) -> list[inspect.Parameter]:
    """The flags of the probe options ``names`` (the fine-tuning flags give the data,
    device and precision)."""
    return options_parameters(
        ProbeOptions, skip=tuple(f.name for f in fields(ProbeOptions) if f.name not in names)
    )


# The options of the measures themselves, shared with ``landscape advise``.
MEASURE_PARAMETERS = [
    keyword("k", typer.Option(10, "--k", help="neighbours of the kNN vote"), int),
    keyword(
        "folds",
        typer.Option(
            DEFAULT_FOLDS,
            "--folds",
            help="folds of the cross-validation on the training split (at most the smallest "
            "class's size)",
        ),
        int,
    ),
    *probe_parameters(("examples",)),
]
FIT_OPTIONS = ("examples", "batch_size", "seed")
_PARAMETERS = [
    *MEASURE_PARAMETERS,
    *probe_parameters(("batch_size", "seed")),
    out_parameter("results/fit.h5"),
]
_SKIP = tuple(
    flag_name(f)
    for cls in SECTIONS.values()
    for f in fields(cls)
    if flag_name(f) not in _CONFIG_FLAGS
)
with_parameters(fit_command, _PARAMETERS + config_parameters(_SKIP))
