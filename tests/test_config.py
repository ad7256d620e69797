"""Configs: defaults, files, overrides, validation, hashing."""

import json

import pytest

from finetune.config import RunConfig, build_config, flag_index, load_config_file
from finetune.errors import ConfigError


def test_defaults_are_complete_and_round_trip_through_json(tmp_path):
    config = build_config("finetune")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"kind": "finetune", "config": config.to_dict()}))
    again = build_config("finetune", load_config_file(path))
    assert again == config
    assert again.hash() == config.hash()


def test_toml_flat_keys_by_flag_name_and_flags_override(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('model = "test_vit"\ndata = "synthetic:far"\ntrain-per-class = 10\nlr = 1\n')
    config = build_config("finetune", load_config_file(path), {"lr": 0.5, "epochs": None})
    assert config.model.name == "test_vit"
    assert config.data.spec == "synthetic:far"
    assert config.data.train_per_class == 10
    assert config.optim.lr == 0.5  # the flag wins over the file
    assert config.train.epochs == 10  # None means "not given"


def test_toml_sections_by_field_name(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[optim]\noptimizer = "adamw"\n[train]\nseed = 3\n')
    config = build_config("finetune", load_config_file(path))
    assert (config.optim.optimizer, config.train.seed) == ("adamw", 3)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"epochs": 0}, "--epochs must be positive"),
        ({"lr": -1.0}, "--lr must be positive"),
        ({"epochs": "ten"}, "--epochs must be int"),
        ({"epochs": 2.5}, "--epochs must be int"),
        ({"optimizer": "rmsprop"}, "--optimizer must be one of sgd, adamw"),
        ({"val_fraction": 1.5}, "--val-fraction must lie in (0, 1)"),
        ({"device": "tpu"}, "--device must be"),
        ({"nonsense": 1}, "unknown option 'nonsense'"),
        ({"init": "x", "pretrained": True}, "either --init or --pretrained"),
    ],
)
def test_malformed_values_are_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_config("finetune", {}, overrides)


def test_pretrain_refuses_initial_weights():
    with pytest.raises(ConfigError, match="random init"):
        build_config("pretrain", {}, {"init": "somewhere"})


def test_malformed_file_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("lr = = 3\n")
    with pytest.raises(ConfigError, match="malformed"):
        load_config_file(path)


def test_hash_changes_with_any_field_and_seed_streams_are_distinct():
    base = build_config("finetune")
    assert build_config("finetune", {}, {"seed": 1}).hash() != base.hash()
    assert isinstance(base, RunConfig)
    seeds = {s: base.train.stream_seed(s) for s in ("init", "order", "aug")}
    assert len(set(seeds.values())) == 3
    pinned = build_config("finetune", {}, {"order_seed": 7})
    assert pinned.train.stream_seed("order") == 7
    assert pinned.train.stream_seed("init") == seeds["init"]


def test_flags_are_unique_across_sections():
    index = flag_index()
    assert {"model", "data", "init", "train_per_class", "epochs", "seed"} <= set(index)
