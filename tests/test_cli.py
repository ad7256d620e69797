"""The command line: every user error is one line and a non-zero exit, with nothing left
in the output folder; the commands' happy paths."""

import sys
from dataclasses import replace

import pytest
import timm
from safetensors.torch import save_file

from cli.main import main
from finetune.errors import ConfigError
from landscape.experiments.options import ReproOptions

FAST = [
    "--image-size",
    "16",
    "--train-per-class",
    "2",
    "--epochs",
    "1",
    "--batch-size",
    "10",
    "--quiet",
]


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["landscape", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


@pytest.fixture
def vit_weights(tmp_path):
    path = tmp_path / "vit.safetensors"
    save_file(timm.create_model("test_vit", num_classes=3, img_size=16).state_dict(), str(path))
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet_nope"], "unknown model 'resnet_nope'"),
        (["--data", "imagenet9000"], "unknown dataset 'imagenet9000'"),
        (["--data", "cifar10", "--data-root", "{tmp}/nothing"], "cifar10"),
        (["--epochs", "0"], "--epochs must be positive"),
        (["--epochs", "many"], "--epochs"),
        (["--optimizer", "lion"], "--optimizer"),
        (["--init", "{tmp}/missing.safetensors"], "no such weights file"),
        (["--init", "{vit}"], "does not fit"),
    ],
)
def test_user_errors_are_one_line_and_leave_nothing(
    monkeypatch, capsys, tmp_path, vit_weights, args, message
):
    out = tmp_path / "run"
    args = [a.format(tmp=tmp_path, vit=vit_weights) for a in args]
    code, stdout, stderr = run_cli(monkeypatch, capsys, "finetune", *FAST, *args, "--out", str(out))
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and message in lines[0]
    assert not out.exists()


def test_finetune_from_a_config_file_then_resume_refuses_extra_options(
    monkeypatch, capsys, tmp_path
):
    config = tmp_path / "c.toml"
    config.write_text('data = "synthetic:far"\nimage-size = 16\ntrain-per-class = 2\nepochs = 1\n')
    out = tmp_path / "run"
    code, stdout, _ = run_cli(
        monkeypatch,
        capsys,
        "finetune",
        "--config",
        str(config),
        "--quiet",
        "--seed",
        "3",
        "--out",
        str(out),
    )
    assert code == 0 and "test acc" in stdout
    import json

    record = json.loads((out / "config.json").read_text())
    assert record["config"]["data"]["spec"] == "synthetic:far"
    assert record["config"]["train"]["seed"] == 3
    code, _, stderr = run_cli(monkeypatch, capsys, "finetune", "--resume", str(out), "--lr", "1")
    assert code == 1 and "drop the other options (lr)" in stderr


def test_pretrain_then_finetune_from_its_run(monkeypatch, capsys, tmp_path):
    source = tmp_path / "source"
    code, _, _ = run_cli(
        monkeypatch, capsys, "pretrain", *FAST, "--data", "synthetic:source", "--out", str(source)
    )
    assert code == 0
    code, stdout, stderr = run_cli(
        monkeypatch,
        capsys,
        "finetune",
        *FAST[:-1],
        "--init",
        str(source),
        "--out",
        str(tmp_path / "ft"),
    )
    assert code == 0
    assert "new head (not loaded): fc.bias, fc.weight" in stderr
    assert "(checkpoint head (20, 96), model head (10, 96))" in stderr


def test_groups_lists_the_layer_groups_in_order(monkeypatch, capsys):
    code, stdout, _ = run_cli(monkeypatch, capsys, "groups", "test_vit")
    lines = stdout.strip().splitlines()
    assert code == 0 and len(lines) == 8
    assert "stem" in lines[0] and "blocks.0" in lines[1] and "head" in lines[-1]


def test_groups_of_an_unknown_model(monkeypatch, capsys):
    code, _, stderr = run_cli(monkeypatch, capsys, "groups", "nope_net")
    assert code == 1 and stderr.startswith("error: unknown model")


def test_datasets_lists_the_registry(monkeypatch, capsys):
    code, stdout, _ = run_cli(monkeypatch, capsys, "datasets")
    names = {line.split()[0] for line in stdout.splitlines() if line.strip()}
    assert {"synthetic:ARG", "folder:ARG", "cifar10", "flowers102", "caltech101"} <= names
    assert {"fashion_mnist", "digits"} <= names
    assert "SPEC[CLASSES]" in stdout and "fashion_mnist[0-4]" in stdout


def test_repro_lists_the_claims(monkeypatch, capsys):
    code, stdout, _ = run_cli(monkeypatch, capsys, "repro", "list")
    names = {line.split()[0] for line in stdout.splitlines()}
    assert code == 0
    assert names == {
        "same_basin",
        "block_shuffle",
        "l2sp",
        "non_binary",
        "depth",
        "better_source",
        "transfer",
        "yosinski",
        "criticality",
        "checkpoints",
        "regularised_source",
    }


def test_repro_pair_must_be_known(monkeypatch, capsys, tmp_path):
    code, _, stderr = run_cli(
        monkeypatch, capsys, "repro", "l2sp", "--pair", "nope", "--out", str(tmp_path)
    )
    assert code == 2 and stderr.count("\n") == 1  # outside the flag's choices: usage
    assert "--pair" in stderr and "'nope' is not one of 'synthetic', 'real'" in stderr
    assert not list(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="--pair must be one of synthetic, real, got 'nope'"):
        ReproOptions(runs=tmp_path, pair="nope")  # the library says it with the flag's name


def test_repro_options_take_the_flags_text(tmp_path):
    options = ReproOptions(runs=str(tmp_path), seeds="2,0", data="digits,fashion_mnist[0,1]")
    assert options.runs == tmp_path and options.seeds == (2, 0)
    assert options.data == ("digits", "fashion_mnist[0,1]")
    with pytest.raises(ConfigError, match="--seeds takes comma-separated integers >= 0"):
        ReproOptions(runs=tmp_path, seeds="1,-1")


def test_repro_data_keeps_commas_inside_a_class_subset():
    from landscape.experiments.options import split_specs

    assert split_specs("fashion_mnist[0,2,4-6], digits,synthetic:far") == (
        "fashion_mnist[0,2,4-6]",
        "digits",
        "synthetic:far",
    )


def test_an_unknown_claim_is_one_line(monkeypatch, capsys, tmp_path):
    code, _, stderr = run_cli(monkeypatch, capsys, "repro", "nope", "--out", str(tmp_path))
    assert code == 1 and "unknown claim 'nope'" in stderr and stderr.count("\n") == 1


def test_an_unknown_study_is_one_line_and_study_takes_repros_flags_but_rejudge(
    monkeypatch, capsys, tmp_path
):
    code, _, stderr = run_cli(
        monkeypatch, capsys, "study", "nope", "--pair", "real", "--out", str(tmp_path)
    )
    assert code == 1 and "unknown study 'nope'" in stderr and stderr.count("\n") == 1
    code, _, stderr = run_cli(monkeypatch, capsys, "study", "out_of_sample", "--rejudge")
    assert code == 2 and "--rejudge" in stderr


def test_repro_data_must_fill_the_claims_roles(monkeypatch, capsys, tmp_path):
    code, _, stderr = run_cli(
        monkeypatch,
        capsys,
        "repro",
        "depth",
        "--data",
        "synthetic:near",
        "--out",
        str(tmp_path),
        "--init",
        str(tmp_path / "no-source"),
    )
    assert code == 1 and "takes 2 target dataset(s)" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "depth.h5").exists()


def test_help_lists_every_command_once_in_the_order_of_the_work():
    from typer.testing import CliRunner

    from cli.main import ORDER, PANELS, app

    names = [info.name or info.callback.__name__ for info in app.registered_commands]
    assert sorted(names) == sorted(ORDER) and len(set(ORDER)) == len(ORDER)
    text = CliRunner().invoke(app, ["--help"]).output
    positions = [text.index(f"─ {panel} ") for panel in PANELS]
    assert positions == sorted(positions)
    assert text.index(" pretrain ") < text.index(" finetune ") < text.index(" bench ")


def test_every_help_text_shows_as_written():
    """Rich reads help text as markup: an unescaped '[ray]' in 'pip install -e ".[ray]"'
    would vanish from the help a user reads."""
    import typer
    from rich.text import Text

    from cli.main import app

    def commands(command):
        yield command
        for sub in getattr(command, "commands", {}).values():
            yield from commands(sub)

    shown = [
        (param.help, Text.from_markup(param.help).plain)
        for command in commands(typer.main.get_command(app))
        for param in command.params
        if getattr(param, "help", None)
    ]
    assert len(shown) > 100
    assert [written for written, plain in shown if plain != written.replace("\\[", "[")] == []
    assert 'pip install -e ".[ray]"' in [plain for _, plain in shown if "Ray" in plain][0]


def test_an_option_group_gives_the_held_options_flags_with_its_defaults():
    from cli.options import options_from, options_parameters
    from landscape.geometry.options import CRITICALITY_PROBE, CriticalityOptions

    parameters = {p.name: p for p in options_parameters(CriticalityOptions)}
    assert {"points", "examples", "seed", "device"} <= set(parameters)
    assert "split" not in parameters and "data" not in parameters  # fixed by criticality
    assert parameters["examples"].default.default == 1000  # the group's, not ProbeOptions'
    values = {"points": 3, "examples": 64, "seed": 2, "out": "f.h5"}
    options = options_from(CriticalityOptions, values)
    assert options.points == 3 and options.probe == replace(CRITICALITY_PROBE, examples=64, seed=2)
    assert values == {"out": "f.h5"}  # the command's own options remain
