"""Configs: defaults, files, overrides, validation, hashing."""

import json
import re

import pytest

from finetune.config import SECTIONS, RunConfig, build_config, flag_index, load_config_file
from finetune.data import get_dataset
from finetune.errors import ConfigError, UnknownDatasetError


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


def test_fields_added_later_keep_the_hash_configs_had_before_them():
    # The hash of this config before --drop-rate, --keep-every and the policies of surgical
    # fine-tuning, LP-FT and Auto-RGN existed.
    before = "6ca358a2c8b8dac051f18fdb8c435f7584f9f85dfc30163b3dc188cb114b9821"
    assert build_config("pretrain", {}, {"seed": 4}).hash() == before
    later = ({"surgical": 1}, {"lp_epochs": 1}, {"lp_lr": 0.2})
    rgn = ({"auto_lr": "rgn"}, {"rgn_batches": 2})
    for changed in ({"drop_rate": 0.1}, {"keep_every": 2}, *later, *rgn):
        assert build_config("pretrain", {}, {"seed": 4, **changed}).hash() != before


def test_flags_are_unique_across_sections():
    index = flag_index()
    assert {"model", "data", "init", "train_per_class", "epochs", "seed"} <= set(index)


@pytest.mark.parametrize(
    "values, error, message",
    [
        ({"data": 3}, ConfigError, "--data must be str, got 3"),
        ({"data": {"spec": 3}}, ConfigError, "--data must be str, got 3"),
        ({"model": {"name": 7}}, ConfigError, "--model must be str, got 7"),
        (
            {"sp": "l3sp"},
            ConfigError,
            "--sp must be one of l2sp, l2sp_fisher, l1sp, gl_sp, got 'l3sp'",
        ),
        (
            {"eval_split": "train"},
            ConfigError,
            "--eval-split must be one of val, test, got 'train'",
        ),
        ({"val_fraction": 1.5}, ConfigError, "--val-fraction must lie in (0, 1), got 1.5"),
        ({"image_size": 0}, ConfigError, "--image-size must be positive, got 0"),
        ({"transfer_groups": -1}, ConfigError, "--transfer-groups must be >= 0, got -1"),
        (
            {"block_shuffle": 3, "image_size": 16},
            ConfigError,
            "--block-shuffle 3 does not divide --image-size 16",
        ),
        (
            {"lr_decay": 0.5, "lr_mult": "1,2"},
            ConfigError,
            "give either --lr-decay or --lr-mult, not both",
        ),
        (
            {"data": "cifar10:x"},
            UnknownDatasetError,
            "dataset 'cifar10' takes no argument, got --data cifar10:x",
        ),
        (
            {"data": "folder"},
            UnknownDatasetError,
            "dataset 'folder' needs an argument: --data folder:...",
        ),
    ],
)
def test_errors_name_the_flag_the_user_types(values, error, message):
    with pytest.raises(error) as raised:
        build_config("finetune", values)
    assert str(raised.value) == message


@pytest.mark.parametrize("flag", ["data", "fisher_data"])
def test_an_unknown_dataset_names_the_option_it_was_given_with(flag):
    with pytest.raises(UnknownDatasetError) as raised:
        build_config("finetune", {}, {flag: "imagenet9000"})
    dashed = flag.replace("_", "-")
    assert str(raised.value).startswith(f"unknown dataset 'imagenet9000' (--{dashed}); known: ")


def test_pretrain_names_the_initial_weights_flag_it_was_given():
    with pytest.raises(ConfigError) as raised:
        build_config("pretrain", {}, {"pretrained": True})
    assert str(raised.value) == "pretrain starts from random init; use finetune for --pretrained"


def test_a_wrong_type_for_every_option_names_its_flag():
    """Whatever a field is called in its section, the message names the flag of that field."""
    flags = {(section, name): flag for flag, (section, name) in flag_index().items()}
    for (section, name), flag in flags.items():
        with pytest.raises(ConfigError) as raised:
            build_config("finetune", {section: {name: {"not": "a value"}}})
        named = re.match(r"--[a-z0-9-]+", str(raised.value))
        assert named and named.group() == "--" + flag.replace("_", "-"), (section, name)
    assert len(flags) == sum(len(cls.__dataclass_fields__) for cls in SECTIONS.values())


def test_library_calls_of_the_dataset_registry_name_the_flags_too():
    with pytest.raises(ConfigError) as raised:
        get_dataset("synthetic:near", "test", image_size=4)
    assert str(raised.value) == "--image-size must be at least 8, got 4"
    with pytest.raises(ConfigError) as raised:
        get_dataset("synthetic:near", "train", image_size=16, train_per_class=10_000)
    assert str(raised.value).startswith("--train-per-class 10000 but class ")
