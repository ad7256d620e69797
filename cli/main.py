"""The ``landscape`` command. Each command parses, calls one library function and prints;
errors a user can cause become one line on stderr and exit code 1."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
import typer.core

from cli.common import keyword, stderr_log, user_errors
from cli.options import config_file_parameter, config_parameters, plain, with_parameters
from cli.progress import ProgressBar
from finetune.config import build_config, load_config_file
from finetune.errors import ConfigError

# The commands in the order a person works, by panel of `landscape --help`.
PANELS: dict[str, tuple[str, ...]] = {
    "Train": ("pretrain", "finetune", "groups", "datasets"),
    "Measure runs": ("cka", "distance", "fit"),
    "The loss landscape": ("barrier", "plane", "sharpness", "criticality"),
    "Choose and explain": ("advise", "explain", "sweep"),
    "Reproduce": ("demo", "repro", "study", "shuffle"),
    "Tools": ("plot", "tables", "bench"),
}
ORDER = [name for names in PANELS.values() for name in names]


class _WorkOrder(typer.core.TyperGroup):
    """Lists the commands in the order of PANELS, not alphabetically."""

    def list_commands(self, ctx: Any) -> list[str]:
        return sorted(self.commands, key=lambda name: (ORDER.index(name), name))


app = typer.Typer(
    cls=_WorkOrder,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Non-binary transfer learning: fine-tune timm models and measure what transferred.",
)
from cli.bench_command import bench_command  # noqa: E402

app.command(
    "bench",
    help="Speed on this machine: engine vs plain loop images/s, l2sp overhead, CKA vs forward "
    "time, barrier vs plain evaluations (--only sharpness: a Hessian-vector product vs a "
    "gradient); one .h5 each and one table.",
)(bench_command)
from cli.geometry_commands import (  # noqa: E402
    barrier_command,
    criticality_command,
    plane_command,
    plot_command,
    sharpness_command,
)

app.command(
    "barrier",
    help="Loss and error on the straight line between two runs' weights, BatchNorm "
    "re-estimated at each point, and the loss barrier (Neyshabur et al. 2020).",
)(barrier_command)
app.command(
    "plane",
    help="Loss on a grid over the plane through three runs, or around one run along random "
    "filter-normalised directions.",
)(plane_command)
app.command(
    "sharpness",
    help="Top Hessian eigenvalue and trace of a run's training loss, whole and per layer "
    "group (power iteration, Hutchinson), and their cost in Hessian-vector products.",
)(sharpness_command)
app.command(
    "criticality",
    help="Module criticality of a run's layer groups (Chatterji et al. 2019): training error "
    "as each group is rewound toward its init, and the noise it tolerates there.",
)(criticality_command)
app.command(
    "plot",
    help="Render a result file (.h5) to PNG according to its kind; RUN/run.h5 draws the "
    "run's learning curves.",
)(plot_command)
from cli.probe_commands import cka_command, distance_command  # noqa: E402

app.command(
    "cka",
    help="Layers-by-layers CKA between the features of two runs on the same examples "
    "(minibatch CKA); F.h5 and a heatmap F.png.",
)(cka_command)
app.command(
    "distance",
    help="Parameter distance of one run from another (default: its init) per layer group; "
    "F.h5 and a bar chart F.png.",
)(distance_command)
from cli.fit_command import fit_command  # noqa: E402

app.command(
    "fit",
    help="How well initial weights fit a target before fine-tuning: per layer group kNN and "
    "linear-probe accuracy and BatchNorm-statistic distance, LogME; F.h5 and F.png.",
)(fit_command)
from cli.advise_command import advise_command  # noqa: E402

app.command(
    "advise",
    help="Advise a fine-tuning configuration from the fit measures (or, with --pilot, from "
    "the probes of a short pilot run): what to freeze, the learning rate and the L2-SP/L2 "
    "mix per layer group, each with its rule; writes TOML.",
)(advise_command)
from cli.explain_command import explain_command  # noqa: E402

app.command(
    "explain",
    help="What fine-tuning did to each layer group of a run: CKA to its initial features, "
    "movement, rewind cost, each with its error; reused, adapted or rewritten, and why.",
)(explain_command)
from cli.repro_command import repro_command  # noqa: E402

app.command(
    "repro",
    help="Reproduce a published claim on tiny models (landscape repro list): numbers, "
    "whether it held, NAME.h5 and NAME.png; 'all' or A,B runs claims side by side.",
)(repro_command)
from cli.study_command import study_command  # noqa: E402

app.command(
    "study",
    help="Run one of the project's own studies (landscape study list): the experiments behind "
    "its measured tables, each writing documented result files.",
)(study_command)


@app.command("tables")
def tables_command(
    names: list[str] | None = typer.Argument(None, help="only these tables (default: all)"),
) -> None:
    """Write the generated tables of README.md, results/README.md and docs/ from the
    committed result files (between their <!-- generated: NAME --> markers)."""
    from landscape.experiments.tables import write_tables

    with user_errors():
        changed = write_tables(names=names or None)
    for path in changed:
        typer.echo(f"rewrote {path}")
    if not changed:
        typer.echo("every generated table is current")


from cli.sweep_command import sweep_command  # noqa: E402

app.command(
    "sweep",
    help="Search the non-binary space (transferred groups, lr and decay, l2sp/l2 per group, "
    "freezing) with Optuna; each trial a run directory; --report prints the table.",
)(sweep_command)
from cli.shuffle_command import shuffle_command  # noqa: E402

app.command(
    "shuffle",
    help="Block-shuffle transfer (Neyshabur et al. 2020): fine-tune from pre-trained and random "
    "init at several block sizes; accuracy and gap per size.",
)(shuffle_command)


def _train_command(kind: str):
    """The body of ``landscape pretrain`` and ``landscape finetune``."""

    def command(**values: Any) -> None:
        from finetune import engine

        values = plain(values)
        out, config_file = values.pop("out"), values.pop("config")
        quiet, dry_run = values.pop("quiet"), values.pop("dry_run")
        resume = values.pop("resume", None)
        progress = ProgressBar(quiet)
        with user_errors():
            if resume is not None:
                given = sorted(k for k, v in values.items() if v is not None)
                if given or config_file or out:
                    raise ConfigError(
                        "--resume continues a run with its own config.json; "
                        f"drop the other options ({', '.join(given) or '--out'})"
                    )
                result = engine.resume(resume, progress=progress)
            else:
                file_values = load_config_file(config_file) if config_file else {}
                config = build_config(kind, file_values, values)
                if dry_run:
                    typer.echo(engine.describe_plan(config))
                    return
                out = out or Path("results/runs") / f"{kind}-{config.hash()[:12]}"
                result = engine.train(config, out, progress=progress)
            progress.close()
            _report(result, quiet)

    params = [
        keyword(
            "out",
            typer.Option(
                None,
                "--out",
                help="run directory to create (default: results/runs/KIND-CONFIGHASH)",
            ),
            Path | None,
        ),
        config_file_parameter(),
        keyword("quiet", typer.Option(False, "--quiet", "-q", help="no progress output"), bool),
        keyword(
            "dry_run",
            typer.Option(
                False,
                "--dry-run",
                help="print the resolved per-group table "
                "(learning rate, strengths, frozen, transferred) and stop",
            ),
            bool,
        ),
    ]
    skip: tuple[str, ...] = ()
    if kind == "finetune":
        params.append(
            keyword(
                "resume",
                typer.Option(
                    None, "--resume", help="continue the interrupted run in this directory"
                ),
                Path | None,
            )
        )
    else:
        skip = ("init", "pretrained")
    return with_parameters(command, params + config_parameters(skip))


def _report(result: Any, quiet: bool) -> None:
    if result.init_report and not quiet:
        for line in result.init_report.lines():
            typer.echo(line, err=True)
    if result.status != "completed":
        typer.echo(f"error: run {result.run} failed: {result.reason}", err=True)
        raise typer.Exit(1)
    s = result.summary
    typer.echo(
        f"{result.run}: test acc {s['test_acc']:.4f}  test loss {s['test_loss']:.4f}  "
        f"best eval acc {s['best_eval_acc']:.4f}  ({s['train_seconds']:.1f} s training)"
    )


app.command(
    "pretrain",
    help="Train a source model from random init; its run directory "
    "serves as --init for fine-tuning (RUN:epochK: an epoch it kept with --keep-every).",
)(_train_command("pretrain"))
app.command("finetune", help="Fine-tune a timm model on a target dataset into a run directory.")(
    _train_command("finetune")
)


@app.command("groups")
def groups(
    model: str = typer.Argument(..., help="timm architecture name"),
    fine: bool = typer.Option(False, "--fine", help="timm's fine-grained groups (blocks)"),
) -> None:
    """Print the model's layer groups in input-to-output order."""
    from finetune.groups import layer_groups
    from finetune.models import create_model

    with user_errors():
        net = create_model(model, num_classes=10, image_size=224)
        params = dict(net.named_parameters())
        for group in layer_groups(net, coarse=not fine):
            count = sum(params[n].numel() for n in group.params)
            typer.echo(
                f"{group.index:3d}  {group.name:<28s} {len(group.params):4d} tensors "
                f"{count:12,d} parameters"
            )


@app.command("datasets")
def datasets() -> None:
    """List the dataset specs this installation knows, and the class-subset syntax."""
    from finetune.data import dataset_entries

    for name, entry in sorted(dataset_entries().items()):
        spec = f"{name}:ARG" if entry.takes_argument else name
        splits = "by folder" if callable(entry.splits) else "/".join(entry.splits)
        typer.echo(f"{spec:<18s} {splits:<15s} {entry.description}")
    typer.echo(
        "\nAny spec takes a class subset as a suffix, SPEC[CLASSES]: indices, inclusive "
        "ranges a-b and class names, comma-separated, e.g. fashion_mnist[0-4], "
        "synthetic:source[0,2,5-9], fashion_mnist[Sandal,Sneaker]. The kept classes are "
        "renumbered 0..k-1 in their original order and keep their names; the run's config "
        "records the suffix, so every command reading the run's data uses the same classes."
    )


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("results/demo"), "--out", help="folder for the demo's runs"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
) -> None:
    """Pre-train a tiny source model on synthetic data, fine-tune from it and from scratch
    (two seeds each) and print what transfer bought, in a few minutes on a CPU."""
    from landscape.experiments.demo import run_demo

    with user_errors():
        report = run_demo(out, progress=None if quiet else ProgressBar(), log=stderr_log(quiet))
    typer.echo(report.table())


for _info in app.registered_commands:
    _name = _info.name or _info.callback.__name__
    _info.rich_help_panel = next(panel for panel, names in PANELS.items() if _name in names)

# The base of click's usage errors, whether typer vendors click or uses the package.
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def main() -> None:
    """Entry point: click's usage errors also become one ``error:`` line (exit code 2).
    Under torchrun only the main process prints results, and every process leaves the
    process group at the end."""
    from finetune import distributed

    if int(os.environ.get("RANK", "0")) > 0:
        # Open for the life of the process.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="landscape", standalone_mode=False)
    except _CLICK_EXCEPTION as err:
        typer.echo(f"error: {err.format_message()}", err=True)
        sys.exit(err.exit_code)
    except typer.Abort:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    finally:
        distributed.stop()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
