"""timm models with a new head, and initial weights from timm, a run or a checkpoint file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import finetune.architectures  # noqa: F401  (registers the tiny architectures in timm)
from finetune.config import DataConfig, ModelConfig, flag_for
from finetune.errors import (
    ConfigError,
    IncompatibleWeightsError,
    NetworkError,
    RunDirError,
    UnknownModelError,
)
from finetune.rundir import FINAL, load_torch, load_weights, run_reference


@dataclass
class InitReport:
    """What loading initial weights did: where they came from and which keys did not match."""

    source: str
    replaced_head: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    head_note: str = ""
    digest: str = ""  # weights_digest of the checkpoint (empty for timm's own weights)

    def lines(self) -> list[str]:
        out = [f"initial weights: {self.source}"]
        if self.replaced_head:
            out.append(f"new head (not loaded): {', '.join(self.replaced_head)} {self.head_note}")
        if self.unexpected:
            ignored = ", ".join(self.unexpected)
            out.append(f"ignored keys of the checkpoint not in the model: {ignored}")
        return out


def create_model(
    name: str,
    num_classes: int,
    image_size: int,
    *,
    pretrained: bool = False,
    drop_rate: float = 0.0,
) -> nn.Module:
    """A timm model for ``num_classes`` outputs; models that take an input size (ViTs) get
    ``image_size``, and ``drop_rate`` is timm's dropout before the classifier. Pre-trained
    weights come from timm (network), with the head replaced."""
    check_model_name(name)
    try:
        return _create(name, num_classes, image_size, pretrained, drop_rate)
    except (OSError, ConnectionError, TimeoutError) as err:
        raise NetworkError(
            f"could not fetch timm's pre-trained weights for {name!r} ({type(err).__name__}); "
            f"are you offline? use {flag_for(ModelConfig, 'init')} with a local file instead"
        ) from None
    except RuntimeError as err:
        if pretrained and "pretrained" in str(err).lower():
            raise NetworkError(f"no pre-trained weights for {name!r}: {err}") from None
        raise


def check_model_name(name: str) -> None:
    """Fail with one line naming the ``--model`` flag when timm has no architecture ``name``
    (an optional ``.tag`` names its pre-trained weights)."""
    if not timm.is_model(name):
        flag = flag_for(ModelConfig, "name")
        raise UnknownModelError(f"unknown model {name!r} ({flag}); see timm.list_models()")


def _create(
    name: str, num_classes: int, image_size: int, pretrained: bool, drop_rate: float
) -> nn.Module:
    # Only a dropout asked for is passed on: at 0 each architecture keeps its own default.
    common = dict(pretrained=pretrained, num_classes=num_classes)
    if drop_rate:
        common["drop_rate"] = drop_rate
    try:
        return timm.create_model(name, img_size=image_size, **common)
    except TypeError as err:
        if "img_size" not in str(err):
            raise
    return timm.create_model(name, **common)


@torch.no_grad()
def check_input_size(model: nn.Module, name: str, image_size: int) -> None:
    """Fail with one line, before training, when the model cannot take the images."""
    was_training = model.training
    model.eval()
    try:
        model(torch.zeros(1, 3, image_size, image_size))
    except RuntimeError as err:
        raise ConfigError(
            f"{name} cannot take {image_size}px images (set {flag_for(DataConfig, 'image_size')}): "
            f"{str(err).splitlines()[0]}"
        ) from None
    finally:
        model.train(was_training)


def classifier_keys(model: nn.Module) -> list[str]:
    """State-dict keys of the classifier that ``reset_classifier`` replaces."""
    head = model.get_classifier()
    ids = {id(t) for t in head.state_dict(keep_vars=True).values()}
    return [k for k, t in model.state_dict(keep_vars=True).items() if id(t) in ids]


def weights_file(ref: str | Path) -> Path:
    """The file a reference to weights names: a run directory's final weights, the weights
    ``RUN:epochK`` kept, or the file itself."""
    named = run_reference(ref)
    if named is not None:
        run, weights = named
        if not weights.exists():
            raise RunDirError(f"{run} is not a completed run (no {FINAL})")
        return weights
    path = Path(ref)
    if not path.exists():
        raise RunDirError(f"no such weights file or run directory: {path}")
    return path


def read_weights(ref: str | Path) -> dict[str, torch.Tensor]:
    """Weights from a run directory (its final weights), ``RUN:epochK`` (an epoch it kept),
    a .safetensors file, or a torch checkpoint loaded with ``weights_only=True``
    (``state_dict``/``model`` keys unwrapped); the ``module.`` (DDP) and ``_orig_mod.``
    (torch.compile) prefixes are dropped."""
    path = weights_file(ref)
    if path.suffix == ".safetensors":
        state = load_weights(path)
    else:
        state = load_torch(path)
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
        tensors = isinstance(state, dict) and all(
            isinstance(v, torch.Tensor) for v in state.values()
        )
        if not tensors:
            raise RunDirError(f"{path} holds no state dict of tensors")
    return {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and values: which weights these are,
    whatever file holds them (a file's bytes also hold its metadata)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}:{tensor.dtype}:{tuple(state[key].shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


_INIT_DIGESTS: dict[tuple[str, int, int], str] = {}


def init_digest(ref: str | Path) -> str:
    """``weights_digest`` of the weights ``ref`` names now (``--init``), remembered while
    their file keeps its size and modification time: a grid asks it of every run that
    starts from one source."""
    path = weights_file(ref)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _INIT_DIGESTS:
        _INIT_DIGESTS[key] = weights_digest(read_weights(path))
    return _INIT_DIGESTS[key]


def load_init(model: nn.Module, path: str | Path) -> InitReport:
    """Load ``path`` into ``model``, keeping the model's own (new) classifier.

    Every non-classifier tensor of the model must be in the checkpoint with the same shape,
    else IncompatibleWeightsError names the first that is not; checkpoint keys the model
    lacks are listed in the report, never dropped silently.
    """
    state = read_weights(path)
    own = model.state_dict()
    head = set(classifier_keys(model))
    for key, tensor in own.items():
        if key in head:
            continue
        if key not in state:
            raise IncompatibleWeightsError(
                f"{path} does not fit {type(model).__name__}: it has no tensor {key!r}"
            )
        if state[key].shape != tensor.shape:
            raise IncompatibleWeightsError(
                f"{path} does not fit: {key!r} has shape {tuple(state[key].shape)} in the "
                f"checkpoint and {tuple(tensor.shape)} in the model"
            )
    loaded = {k: v for k, v in state.items() if k in own and k not in head}
    model.load_state_dict(loaded, strict=False)
    note = ""
    old_head = [k for k in head if k in state]
    if old_head:
        weight = max(sorted(old_head), key=lambda k: state[k].ndim)
        note = (
            f"(checkpoint head {tuple(state[weight].shape)}, model head {tuple(own[weight].shape)})"
        )
    return InitReport(
        source=str(path),
        replaced_head=sorted(head),
        unexpected=sorted(k for k in state if k not in own and k not in head),
        head_note=note,
        digest=weights_digest(state),
    )


def running_batchnorms(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    """The model's BatchNorm layers that keep running statistics, with their names."""
    return [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, _BatchNorm) and m.track_running_stats and m.running_mean is not None
    ]
