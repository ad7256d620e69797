"""Frozen configuration dataclasses: the single source of every option's name, default and
help text. The CLI flags and the TOML/JSON config files are generated from these fields, and
``config.json`` in every run holds them whole, so a run is reproducible from it alone."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from finetune.errors import ConfigError
from finetune.regularisers.penalties import needs_fisher, sp_penalties

TRI_STATE = ("auto", "on", "off")


def option(default: Any, help: str, *, flag: str | None = None, choices: tuple[str, ...] = ()):
    """A config field with its help text, an optional flag name and allowed values."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices})


def option_group(default: Any, *, fixed: tuple[str, ...] = (), help: dict[str, str] | None = None):
    """A field holding another options dataclass (``default``, e.g. a ``ProbeOptions``)
    rather than copying its fields: its fields are the command's flags too, with the
    defaults of ``default``, except the ``fixed`` ones (the command sets them), and with
    ``help`` replacing a field's help text where this use differs."""
    return field(default=default, metadata={"group": True, "fixed": fixed, "help": help or {}})


@dataclass(frozen=True)
class ModelConfig:
    name: str = option("test_resnet", "timm architecture name", flag="model")
    init: str | None = option(
        None,
        "initial weights: a run directory, RUN:epochK (an epoch the run kept, see "
        "--keep-every) or a .safetensors/.pt file (head replaced)",
    )
    pretrained: bool = option(False, "start from timm's pre-trained weights (needs the network)")
    drop_rate: float = option(
        0.0,
        "dropout rate before the classifier (timm's drop_rate), a regulariser of training; "
        "0 keeps the architecture's default (no dropout for most)",
    )

    def __post_init__(self) -> None:
        if self.init and self.pretrained:
            raise ConfigError(
                f"give either {flag_for(self, 'init')} or {flag_for(self, 'pretrained')}, not both"
            )
        if not 0.0 <= self.drop_rate < 1.0:
            raise ConfigError(
                f"{flag_for(self, 'drop_rate')} must lie in [0, 1), got {self.drop_rate}"
            )


@dataclass(frozen=True)
class DataConfig:
    spec: str = option(
        "synthetic:near", "dataset spec, e.g. synthetic:near, cifar10, folder:DIR", flag="data"
    )
    data_root: str = option("data", "folder holding downloaded datasets")
    download: bool = option(False, "download the dataset if it is missing")
    image_size: int | None = option(None, "image side in pixels (default: the dataset's own)")
    train_per_class: int | None = option(None, "keep N training images per class (seeded)")
    val_fraction: float = option(
        0.1,
        "fraction of each class held out for validation when the dataset has no validation split",
    )
    split_seed: int = option(
        0, "seed of the validation carve-out (or of the folds) and of the per-class subsample"
    )
    eval_split: str = option("val", "split evaluated after every epoch", choices=("val", "test"))
    augment: bool = option(True, "augment training images (the scheme is --aug)")
    hflip: bool = option(True, "random horizontal flips (with --augment)")
    device_data: str = option(
        "auto", "keep the whole dataset on the training device", choices=TRI_STATE
    )
    workers: int = option(0, "DataLoader worker processes when data is not on the device")
    block_shuffle: int | None = option(
        None,
        "cut images into BxB-pixel blocks and permute them (Neyshabur et al. 2020); "
        "image size = intact",
    )
    shuffle_scheme: str = option(
        "fixed",
        "block shuffle: fixed (one permutation for every image, train and test, as the "
        "paper) or random (a fresh permutation per image and batch)",
        choices=("fixed", "random"),
    )
    shuffle_seed: int = option(
        0, "seed of the fixed block permutation (and of evaluation's under the random scheme)"
    )
    preprocess: str = option(
        "auto",
        "input size, resize and normalisation: model (timm's data config of the model: its "
        "input size, crop_pct, interpolation, mean/std), dataset (the dataset's own size, "
        "bilinear, no crop margin, the model's mean/std); auto: model with --pretrained, "
        "else dataset; --image-size overrides the input size in both",
        choices=("auto", "dataset", "model"),
    )
    aug: str = option(
        "auto",
        "augmentation scheme: translate (random shifts of up to 1/8 of the side, reflect "
        "padding), rrc (random resized crop, scale 0.08-1, ratio 3/4-4/3); auto: rrc when "
        "--preprocess resolves to model, else translate",
        choices=("auto", "translate", "rrc"),
    )
    val_fold: int | None = option(
        None,
        "validate on fold I of the K = --folds stratified folds of the training split "
        "(seeded by --split-seed) and train on the others, instead of carving --val-fraction: "
        "the runs of folds 0..K-1 cross-validate (datasets without a validation split)",
    )
    folds: int = option(5, "number of folds of --val-fold")

    def __post_init__(self) -> None:
        _check_spec(self, "spec")
        check_val_fold(self.val_fold, self.folds)
        _check_positive(self, "image_size", "train_per_class", "block_shuffle")
        _check_non_negative(self, "workers")
        if self.block_shuffle and self.image_size and self.image_size % self.block_shuffle:
            raise ConfigError(
                f"{flag_for(self, 'block_shuffle')} {self.block_shuffle} does not divide "
                f"{flag_for(self, 'image_size')} {self.image_size}"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(
                f"{flag_for(self, 'val_fraction')} must lie in (0, 1), got {self.val_fraction}"
            )


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = option("sgd", "optimizer", choices=("sgd", "adamw"))
    lr: float = option(0.01, "peak learning rate")
    momentum: float = option(0.9, "SGD momentum (AdamW beta1)")
    nesterov: bool = option(False, "Nesterov momentum (SGD)")
    schedule: str = option(
        "cosine", "learning-rate schedule", choices=("cosine", "step", "constant")
    )
    warmup_epochs: float = option(0.0, "linear warm-up from 0, in epochs")
    min_lr: float = option(0.0, "learning rate at the end of the cosine schedule")
    step_epochs: int = option(30, "step schedule: epochs between decays")
    step_gamma: float = option(0.1, "step schedule: factor of each decay")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy")

    def __post_init__(self) -> None:
        _check_positive(self, "lr", "step_epochs")
        _check_non_negative(self, "momentum", "warmup_epochs", "min_lr")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(
                f"{flag_for(self, 'label_smoothing')} must lie in [0, 1), "
                f"got {self.label_smoothing}"
            )


PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    # Li, Grandvalet, Davoine 2018: alpha 0.1 toward w0, beta 0.01 on new parameters.
    "l2sp": {"sp": "l2sp", "l2sp": (0.1,), "l2": (0.0,), "l2_head": 0.01},
}
# The SP penalties that need a Fisher estimate, as the Fisher options' help names them.
FISHER_SP = "/".join(name for name in sp_penalties() if needs_fisher(name))


@dataclass(frozen=True)
class RegConfig:
    """Regularisers, each with a strength per layer group (one value for every group, or
    one per group in the order ``landscape groups`` prints)."""

    preset: str = option(
        "none",
        "start from a published setting (l2sp: alpha 0.1, beta 0.01 on new "
        "parameters, no L2 on transferred ones); other flags override it",
        choices=tuple(PRESETS),
    )
    l2: tuple[float, ...] = option(
        (5e-4,), "plain L2 beta toward zero, beta/2*||w||^2, per group (one value or a list)"
    )
    l2_head: float | None = option(
        None, "L2 beta of new parameters (head, re-initialised groups); default: their group's --l2"
    )
    sp: str = option("l2sp", "form of the penalty toward w0", choices=sp_penalties())
    l2sp: tuple[float, ...] = option(
        (0.0,),
        "SP strength alpha toward the initial weights w0 of transferred parameters, "
        "per group (one value or a list)",
    )
    sp_smoothing: float = option(
        1e-3, "l1sp/gl_sp: |d| is smoothed as sqrt(d^2 + eps^2) - eps near 0"
    )
    reg_mode: str = option(
        "coupled",
        "coupled: the penalty's gradient joins the loss gradient (as if added to the "
        "loss); decoupled: the weights shrink directly, AdamW-style",
        choices=("coupled", "decoupled"),
    )
    reg_params: str = option(
        "weights",
        "which parameters the parameter penalties act on: weights (conv and linear "
        "weights, as the official L2-SP code) or all (also norm layers, biases, tokens)",
        choices=("weights", "all"),
    )
    fisher_data: str | None = option(
        None,
        f"{FISHER_SP}: dataset spec for the Fisher information (default: the --init "
        "run's own dataset when known, else the target)",
    )
    fisher_batches: int = option(
        10, f"batches of data used to estimate the Fisher ({FISHER_SP}) and DELTA's attention"
    )
    delta: float = option(0.0, "DELTA: strength of the feature-map distance to the initial model")
    delta_attention: bool = option(False, "DELTA: weight channels by their importance (attention)")
    bss: float = option(0.0, "BSS: strength of batch spectral shrinkage of penultimate features")
    bss_k: int = option(1, "BSS: number of smallest singular values shrunk")

    def __post_init__(self) -> None:
        _check_spec(self, "fisher_data")
        _check_non_negative(self, "l2_head", "sp_smoothing", "delta", "bss")
        _check_positive(self, "fisher_batches", "bss_k")
        for name in ("l2", "l2sp"):
            values = getattr(self, name)
            if not values or any(v < 0 for v in values):
                raise ConfigError(
                    f"{flag_for(self, name)} takes non-negative strengths, got {values}"
                )


@dataclass(frozen=True)
class PolicyConfig:
    """Layerwise policies over the model's ordered layer groups."""

    transfer_groups: int | None = option(
        None,
        "keep the initial weights of the first K groups, re-initialise the rest "
        "(default: all groups)",
    )
    freeze_groups: int = option(0, "do not update the first K groups")
    freeze_bn_stats: bool = option(
        True,
        "frozen groups also keep their BatchNorm statistics (--no-freeze-bn-stats lets "
        "them follow the target)",
    )
    lr_decay: float | None = option(
        None,
        "layer-wise learning-rate decay D from the head down over timm's fine layers "
        "(as timm's layer_decay): a layer n below the head trains at lr * D^n",
    )
    lr_mult: tuple[float, ...] | None = option(
        None, "one learning-rate multiplier per layer group (instead of --lr-decay)"
    )
    lp_epochs: int = option(
        0,
        "LP-FT (Kumar et al. 2022): the first K of --epochs train the new classifier alone "
        "(a linear probe: every other tensor frozen, every BatchNorm in eval mode, no lr "
        "multiplier) on a cosine from --lp-lr to 0; the rest fine-tune as the other options "
        "say, their warm-up and schedule counted from their first step. Re-initialised "
        "groups (--transfer-groups) stay at their random init during the probe (0: off)",
    )
    lp_lr: float = option(
        0.1,
        "LP-FT: peak learning rate of the probe stage (a head trained alone from a random "
        "init takes a larger step than fine-tuning)",
    )
    surgical: int | None = option(
        None,
        "surgical fine-tuning (Lee et al. 2023): train only body layer group G (0 = stem, "
        "as landscape groups MODEL numbers them) and the head; every other group is frozen "
        "with its BatchNorm statistics, as --freeze-groups does. The head trains too because "
        "it is new here (the paper keeps the pre-trained classifier of the same labels)",
    )
    auto_lr: str = option(
        "none",
        "rgn: Auto-RGN (Lee et al. 2023). At every epoch's start each trainable tensor's "
        "relative gradient norm ||grad||/||w|| of the cross-entropy, averaged over "
        "--rgn-batches batches, is divided by the largest; its lr becomes the scheduled lr x "
        "its static scale (--lr-mult/--lr-decay) x that ratio. Unlike the official code, "
        "norm layers are kept (each at its own ratio), the optimizer and its state persist "
        "across epochs, and the new head takes part in the normalisation",
        choices=("none", "rgn"),
    )
    rgn_batches: int = option(
        5,
        "--auto-lr rgn: batches measured at each epoch's start (its first ones, in the "
        "epoch's order, not augmented; at most the epoch's)",
    )

    def __post_init__(self) -> None:
        _check_non_negative(self, "freeze_groups", "transfer_groups", "lp_epochs", "surgical")
        _check_positive(self, "lp_lr", "rgn_batches")
        if self.surgical is not None and self.freeze_groups > 0:
            raise ConfigError(
                f"give either {flag_for(self, 'surgical')} or {flag_for(self, 'freeze_groups')}, "
                "not both: surgical fine-tuning freezes every group but one and the head"
            )
        decay, mult = flag_for(self, "lr_decay"), flag_for(self, "lr_mult")
        if self.lr_decay is not None and not 0.0 < self.lr_decay <= 1.0:
            raise ConfigError(f"{decay} must lie in (0, 1], got {self.lr_decay}")
        if self.lr_decay is not None and self.lr_mult is not None:
            raise ConfigError(f"give either {decay} or {mult}, not both")
        if self.lr_mult is not None and any(v < 0 for v in self.lr_mult):
            raise ConfigError(f"{mult} takes non-negative multipliers, got {self.lr_mult}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = option(10, "passes over the training set")
    batch_size: int = option(
        32, "training batch size (under torchrun the global batch, split among the processes)"
    )
    eval_batch_size: int = option(256, "evaluation batch size")
    seed: int = option(0, "master seed; the three streams below default to streams derived from it")
    init_seed: int | None = option(None, "seed of newly initialised layers (the head)")
    order_seed: int | None = option(None, "seed of the data order")
    aug_seed: int | None = option(None, "seed of the augmentation and dropout")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    precision: str = option(
        "auto", "auto is bf16 autocast on a GPU, fp32 on the CPU", choices=("auto", "fp32", "bf16")
    )
    channels_last: str = option(
        "auto", "channels_last memory format (auto: on a GPU)", choices=TRI_STATE
    )
    fused: str = option("auto", "fused optimiser kernels (auto: on a GPU)", choices=TRI_STATE)
    compile: bool = option(False, "torch.compile the model")
    log_every: int = option(20, "steps between reading metrics back to the host")
    checkpoint_every: int = option(
        0, "steps between checkpoints (0: at each evaluation, see --eval-every)"
    )
    eval_every: int = option(
        1,
        "epochs between evaluations, each followed by a checkpoint; the last epoch is always "
        "evaluated. Training is the same whatever its value",
    )
    sync_bn: bool = option(
        False,
        "under torchrun, BatchNorm normalises with the statistics of the whole global batch "
        "(SyncBatchNorm; CUDA only)",
    )
    keep_every: int = option(
        0,
        "keep the weights of every N-th epoch and of the last in RUN/epochs/, each usable "
        "as RUN:epochK wherever a run is taken (0: keep none)",
    )

    def __post_init__(self) -> None:
        _check_positive(self, "epochs", "batch_size", "eval_batch_size", "log_every", "eval_every")
        _check_non_negative(self, "checkpoint_every", "keep_every")
        if self.device != "auto" and not (
            self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")
        ):
            raise ConfigError(
                f"{flag_for(self, 'device')} must be auto, cpu, cuda or cuda:N, got {self.device!r}"
            )

    def stream_seed(self, stream: str) -> int:
        """The seed of one named stream: its own value if given, else derived from ``seed``."""
        own = getattr(self, f"{stream}_seed")
        if own is not None:
            return own
        digest = hashlib.sha256(f"{self.seed}:{stream}".encode()).digest()
        return int.from_bytes(digest[:4], "little")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. ``kind`` is ``pretrain`` or ``finetune``."""

    kind: str = "finetune"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    reg: RegConfig = field(default_factory=RegConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.kind not in ("pretrain", "finetune"):
            raise ConfigError(f"kind must be pretrain or finetune, got {self.kind!r}")
        if self.kind == "pretrain" and (self.model.init or self.model.pretrained):
            given = "init" if self.model.init else "pretrained"
            raise ConfigError(
                f"pretrain starts from random init; use finetune for {flag_for(self.model, given)}"
            )
        for section in (self.model, self.data, self.optim, self.reg, self.policy, self.train):
            check_choices(section)
        policy = self.policy
        if policy.lp_epochs >= self.train.epochs:
            raise ConfigError(
                f"{flag_for(policy, 'lp_epochs')} {policy.lp_epochs} must be less than "
                f"{flag_for(self.train, 'epochs')} {self.train.epochs}: LP-FT needs at least "
                "one epoch of fine-tuning after the probe"
            )
        if policy.auto_lr == "rgn" and self.reg.reg_mode == "decoupled":
            raise ConfigError(
                f"{flag_for(policy, 'auto_lr')} rgn needs {flag_for(self.reg, 'reg_mode')} "
                "coupled: the decoupled shrink scales by the static per-group learning rates"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """SHA-256 of the sorted JSON of the configuration. Fields added after runs were
        first written (``LATER_FIELDS``) are left out while at their default, so a run made
        before they existed keeps its hash and is still reused."""
        values = self.to_dict()
        for section, names in LATER_FIELDS.items():
            defaults = {f.name: f.default for f in fields(SECTIONS[section])}
            for name in names:
                if values[section][name] == defaults[name]:
                    del values[section][name]
        blob = json.dumps(values, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "reg": RegConfig,
    "policy": PolicyConfig,
    "train": TrainConfig,
}

# Fields added to a section after the first runs were written: left out of the hash while
# at their default (see RunConfig.hash). Append a new field here when adding one.
LATER_FIELDS: dict[str, tuple[str, ...]] = {
    "model": ("drop_rate",),
    "train": ("sync_bn", "eval_every", "keep_every"),
    "data": (
        "block_shuffle",
        "shuffle_scheme",
        "shuffle_seed",
        "preprocess",
        "aug",
        "val_fold",
        "folds",
    ),
    "policy": ("surgical", "lp_epochs", "lp_lr", "auto_lr", "rgn_batches"),
}


def flag_name(f: dataclasses.Field) -> str:
    """The command-line name of a config field, without dashes: ``train_per_class``."""
    return f.metadata.get("flag") or f.name


def check_choices(options: object) -> None:
    """Fail with one line naming the flag when a field of the options dataclass instance
    ``options`` holds a value outside its declared choices."""
    for f in fields(options):
        choices = f.metadata.get("choices")
        value = getattr(options, f.name)
        if choices and value not in choices:
            raise ConfigError(
                f"{flag_for(options, f.name)} must be one of {', '.join(choices)}, got {value!r}"
            )


def comma_ints(value: object, flag: str, minimum: int = 1) -> tuple[int, ...]:
    """``"1,2,4"`` (a flag's text) or a sequence of integers -> (1, 2, 4); anything else,
    or a value under ``minimum``, is a ConfigError naming ``flag``."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        numbers = tuple(int(v) for v in items if str(v).strip())  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(f"{flag} takes comma-separated integers, got {value!r}") from None
    if not numbers or min(numbers) < minimum:
        raise ConfigError(f"{flag} takes comma-separated integers >= {minimum}, got {value!r}")
    return numbers


def flag_for(section: object, name: str) -> str:
    """The flag a user types for field ``name`` of a config section (class or instance),
    as error messages name it: ``--data`` for ``DataConfig.spec``."""
    f = next(f for f in fields(section) if f.name == name)
    return "--" + flag_name(f).replace("_", "-")


def flag_index() -> dict[str, tuple[str, str]]:
    """Every flag name mapped to its (section, field)."""
    index: dict[str, tuple[str, str]] = {}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            index[flag_name(f)] = (section, f.name)
    return index


def flat_options(config: RunConfig) -> dict[str, Any]:
    """Every option of ``config`` by flag name, unset (None) ones left out: the inverse of
    ``build_config``, and what a TOML file for ``--config`` holds to reproduce it."""
    values = {}
    for flag, (section, name) in flag_index().items():
        value = getattr(getattr(config, section), name)
        if value is not None:
            values[flag] = list(value) if isinstance(value, tuple) else value
    return values


def build_config(
    kind: str, values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """A validated RunConfig from defaults, then ``values`` (nested as config.json, or flat by
    flag name, as in a TOML file), then ``overrides`` (flat by flag name; None means unset)."""
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    _merge(sections, values or {})
    _merge(sections, given)
    preset = sections["reg"].get("preset", "none")
    if preset not in PRESETS:
        raise ConfigError(
            f"{flag_for(RegConfig, 'preset')} must be one of {', '.join(PRESETS)}, got {preset!r}"
        )
    # A preset fills in what neither the file nor the flags set.
    sections = {name: {} for name in SECTIONS}
    _merge(sections, PRESETS[preset])
    _merge(sections, values or {})
    _merge(sections, given)
    try:
        parts = {name: SECTIONS[name](**sections[name]) for name in SECTIONS}
        return RunConfig(kind=kind, **parts)
    except TypeError as err:
        raise ConfigError(f"bad configuration: {err}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a .toml or .json config file (a run's config.json works as is)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {path} is malformed: {err}") from None
    if "config" in values and isinstance(values["config"], dict):
        values = values["config"]
    return values


def _merge(sections: dict[str, dict[str, Any]], values: dict[str, Any]) -> None:
    index = flag_index()
    for key, value in values.items():
        if key == "kind":
            continue
        if key in SECTIONS and isinstance(value, dict):
            known = {f.name for f in fields(SECTIONS[key])}
            for name, item in value.items():
                if name not in known:
                    raise ConfigError(f"unknown option {key}.{name}")
                sections[key][name] = _coerce(SECTIONS[key], name, item)
            continue
        target = index.get(key.replace("-", "_"))
        if target is None:
            raise ConfigError(f"unknown option {key!r}")
        sections[target[0]][target[1]] = _coerce(SECTIONS[target[0]], target[1], value)


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}
FLOATS = "tuple[float, ...]"


def _coerce(cls: type, name: str, value: Any) -> Any:
    """``value`` checked against the field's annotation (ints are accepted as floats; a
    list of floats is a number, a list or a comma-separated string)."""
    annotation = next(f.type for f in fields(cls) if f.name == name)
    parts = [p.strip() for p in str(annotation).split("|")]
    if value is None and "None" in parts:
        return None
    flag = flag_for(cls, name)
    if parts[0] == FLOATS:
        return _floats(flag, value)
    base = _TYPES[parts[0]]
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, base) and not (base is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{flag} must be {parts[0]}, got {value!r}")


def _floats(flag: str, value: Any) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else value
    items = items if isinstance(items, (list, tuple)) else [items]
    try:
        out = tuple(float(v) for v in items if not isinstance(v, bool))
    except (TypeError, ValueError):
        out = ()
    if len(out) != len(items) or not out:
        raise ConfigError(f"{flag} takes a number or a comma-separated list, got {value!r}")
    return out


def check_val_fold(val_fold: int | None, folds: int) -> None:
    """Fail with one line naming the flag unless there are at least two folds and
    ``val_fold`` (when given) is one of them."""
    if folds < 2:
        raise ConfigError(f"{flag_for(DataConfig, 'folds')} must be at least 2, got {folds}")
    if val_fold is not None and not 0 <= val_fold < folds:
        raise ConfigError(
            f"{flag_for(DataConfig, 'val_fold')} must lie in 0..{folds - 1} "
            f"({flag_for(DataConfig, 'folds')} {folds}), got {val_fold}"
        )


def _check_positive(section: object, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if value is not None and not value > 0:
            raise ConfigError(f"{flag_for(section, name)} must be positive, got {value}")


def _check_non_negative(section: object, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        if value is not None and value < 0:
            raise ConfigError(f"{flag_for(section, name)} must be >= 0, got {value}")


def _check_spec(section: object, name: str) -> None:
    """A dataset spec field resolved against the dataset registry, whose errors then name
    this field's flag (``--data``, ``--fisher-data``)."""
    spec = getattr(section, name)
    if spec is None:
        return
    # Imported here, not above: the registry imports this module for its flags' names.
    from finetune.data.registry import resolve_spec

    resolve_spec(spec, flag=flag_for(section, name))
