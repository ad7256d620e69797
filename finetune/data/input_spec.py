"""What a run feeds its model: the input size, the size images are decoded (stored) at, the
resize interpolation, the normalisation and the augmentation scheme. Resolved once per run
from the config and timm's data config of the model (the preprocessing its pre-trained
weights were trained and evaluated with), recorded in ``config.json`` so the probes prepare
images as the run did."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from timm.data import resolve_data_config
from timm.models import get_pretrained_cfg

from finetune.config import DataConfig, ModelConfig
from finetune.errors import ConfigError, UnknownModelError
from finetune.models import check_model_name


@dataclass(frozen=True)
class InputSpec:
    """Images are decoded at ``stored_size`` = floor(``size`` / ``crop_pct``) with
    ``interpolation``; evaluation centre-crops ``size`` (timm's eval transform), training
    augments with ``aug`` to ``size``; both normalise with ``mean``/``std``. ``preprocess``
    is the resolved source: ``model`` (timm's data config) or ``dataset``."""

    size: int
    stored_size: int
    crop_pct: float
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    aug: str
    preprocess: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> InputSpec:
        """The spec ``to_dict`` wrote (JSON lists back to tuples)."""
        return cls(**{**values, "mean": tuple(values["mean"]), "std": tuple(values["std"])})


def model_data_config(name: str) -> dict[str, Any]:
    """timm's data config (input_size, interpolation, mean, std, crop_pct, crop_mode) of the
    model ``name`` (an optional ``.tag`` picks the weights), from its registered pretrained
    config: no model is built, nothing is downloaded."""
    check_model_name(name)
    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError as err:
        raise UnknownModelError(f"unknown model {name!r}: {err}") from None
    return resolve_data_config({"in_chans": 3}, pretrained_cfg=cfg.to_dict() if cfg else None)


def resolve_input(model: ModelConfig, data: DataConfig, dataset_default_size: int) -> InputSpec:
    """The InputSpec of a run: ``--preprocess model`` takes the input size, crop_pct and
    interpolation from timm's data config of the model, ``dataset`` the dataset's own size
    (``dataset_default_size``) with no crop margin and bilinear resizing, ``auto`` is model
    for ``--pretrained`` runs and dataset otherwise. ``--image-size`` overrides the input
    size; mean/std are always the model's; ``--aug auto`` is rrc under model, else
    translate."""
    timm_cfg = model_data_config(model.name)
    preprocess = data.preprocess
    if preprocess == "auto":
        preprocess = "model" if model.pretrained else "dataset"
    if preprocess == "model":
        _, height, width = timm_cfg["input_size"]
        if data.image_size is None and height != width:
            raise ConfigError(
                f"{model.name} takes {height}x{width}px inputs; give a square --image-size"
            )
        size = data.image_size or height
        crop_pct, interpolation = float(timm_cfg["crop_pct"]), timm_cfg["interpolation"]
    else:
        size = data.image_size or dataset_default_size
        crop_pct, interpolation = 1.0, "bilinear"
    aug = data.aug
    if aug == "auto":
        aug = "rrc" if preprocess == "model" else "translate"
    return InputSpec(
        size=size,
        stored_size=math.floor(size / crop_pct),
        crop_pct=crop_pct,
        interpolation=interpolation,
        mean=tuple(timm_cfg["mean"]),
        std=tuple(timm_cfg["std"]),
        aug=aug,
        preprocess=preprocess,
    )


def recorded_input(record: dict[str, Any]) -> InputSpec:
    """The InputSpec a run's ``config.json`` holds; for runs written before it was recorded,
    the preparation they had: the stored size as input size, bilinear, no crop margin,
    the model's mean/std, translation."""
    data = record["data"]
    if "input" in data:
        return InputSpec.from_dict(data["input"])
    timm_cfg = model_data_config(record["config"]["model"]["name"])
    return InputSpec(
        size=data["image_size"],
        stored_size=data["image_size"],
        crop_pct=1.0,
        interpolation="bilinear",
        mean=tuple(timm_cfg["mean"]),
        std=tuple(timm_cfg["std"]),
        aug="translate",
        preprocess="dataset",
    )
