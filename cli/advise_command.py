"""``landscape advise``: the fit measures of a model's initial weights on a target, turned
into a fine-tuning configuration by the advisor's rules (``landscape.tune.advisor``); prints the
measures and the rule behind each choice, writes a TOML file that ``landscape finetune
--config`` runs as it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cli.common import keyword, user_errors
from cli.fit_command import MEASURE_PARAMETERS, measure_options
from cli.options import config_file_parameter, config_parameters, plain, with_parameters


def advise_command(**values: Any) -> None:
    """Measure how well the initial weights fit the target, then advise what to freeze,
    the learning rate and the L2-SP/L2 mix of every layer group; writes OUT (TOML) and the
    measures beside it (OUT with .fit.h5)."""
    from finetune.config import build_config, load_config_file
    from landscape.tune.advisor import advise_run

    values = plain(values)
    own = {
        name: values.pop(name)
        for name in ("k", "folds", "examples", "fit_seed", "out", "config", "explain")
    }
    out: Path = own["out"]
    with user_errors():
        file_values = load_config_file(own["config"]) if own["config"] else {}
        given = {k: v for k, v in values.items() if v is not None}
        config = build_config("finetune", file_values, given)
        options = measure_options(config, examples=own["examples"], seed=own["fit_seed"])
        advice = advise_run(
            config,
            k=own["k"],
            folds=own["folds"],
            options=options,
            out=out,
            fit_out=out.with_suffix(".fit.h5"),
        )
    typer.echo(advice.table(explain=own["explain"]))
    typer.echo(f"wrote {out} (run it: landscape finetune --config {out} --out RUN)")


_PARAMETERS = MEASURE_PARAMETERS + [
    keyword(
        "fit_seed",
        typer.Option(0, "--fit-seed", help="seed of the --examples subset of the measures"),
        int,
    ),
    keyword(
        "explain",
        typer.Option(
            False, "--explain", help="show, per group, the fit against depth behind the advice"
        ),
        bool,
    ),
    config_file_parameter(),
    keyword(
        "out", typer.Option(Path("advice.toml"), "--out", help="advised configuration (TOML)"), Path
    ),
]
# --folds is the measures' cross-validation here; the data's --folds (of --val-fold) comes
# from --config or its default.
with_parameters(advise_command, _PARAMETERS + config_parameters(("folds",)))
