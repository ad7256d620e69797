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
from finetune.errors import ConfigError


def advise_command(**values: Any) -> None:
    """Measure how well the initial weights fit the target, then advise what to freeze,
    the learning rate and the L2-SP/L2 mix of every layer group; writes OUT (TOML) and the
    measures beside it (OUT with .fit.h5)."""
    from finetune.config import build_config, load_config_file
    from landscape.tune.advisor import advise_run

    values = plain(values)
    own = {
        name: values.pop(name)
        for name in (
            "k", "folds", "examples", "fit_seed", "out", "config", "explain", "pilot",
            "pilot_fraction", "pilot_runs",
        )
    }  # fmt: skip
    out: Path = own["out"]
    with user_errors():
        file_values = load_config_file(own["config"]) if own["config"] else {}
        given = {k: v for k, v in values.items() if v is not None}
        config = build_config("finetune", file_values, given)
        if own["pilot"]:
            _pilot(config, out, own["pilot_fraction"], own["pilot_runs"])
            return
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


def _pilot(config, out: Path, fraction: float, runs: Path | None) -> None:
    """``--pilot``: the probe-guided advice from a short pilot of the recipe."""
    from landscape.tune.pilot import PilotRules, advise_from_pilot

    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"--pilot-fraction must lie in (0, 1], got {fraction}")
    advice = advise_from_pilot(
        config,
        rules=PilotRules(fraction=fraction),
        runs_dir=runs or out.parent / f"{out.stem}-pilot",
        out=out,
        explain_out=out.with_suffix(".pilot.h5"),
    )
    typer.echo(advice.table())
    typer.echo(
        f"wrote {out} and the pilot's explanation {out.with_suffix('.pilot.h5')} "
        f"(run it: landscape finetune --config {out} --out RUN)"
    )


_PARAMETERS = MEASURE_PARAMETERS + [
    keyword(
        "pilot",
        typer.Option(
            False,
            "--pilot",
            help="probe-guided advice instead of the fit measures: train a short pilot of the "
            "recipe, explain it on the validation images, and set freezing, transferred "
            "groups and learning rates from its probes",
        ),
        bool,
    ),
    keyword(
        "pilot_fraction",
        typer.Option(1 / 3, "--pilot-fraction", help="--pilot: the pilot's share of --epochs"),
        float,
    ),
    keyword(
        "pilot_runs",
        typer.Option(
            None, "--pilot-runs", help="--pilot: where the pilot run goes (default: beside OUT)"
        ),
        Path | None,
    ),
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
