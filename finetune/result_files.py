"""Self-describing HDF5 result files (docs/design.md): root attributes ``kind``,
``schema_version``, ``created``, ``landscape_version``, ``command``; datasets; a ``summary``
group whose attributes hold the headline figures. Written atomically."""

from __future__ import annotations

import datetime
import json
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from finetune import __version__
from finetune.distributed import processes
from finetune.rundir import atomic_write

SCHEMA_VERSION = 1


def write_result(
    path: Path,
    kind: str,
    datasets: Mapping[str, Any],
    *,
    attrs: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
    command: str | None = None,
) -> None:
    """Write one result file. Dataset names may contain '/' to form groups; lists of
    strings become variable-length UTF-8 string datasets; dict attributes become JSON.
    Under torchrun only the main process writes."""
    if not processes().main:
        return

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["kind"] = kind
            f.attrs["schema_version"] = SCHEMA_VERSION
            f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
            f.attrs["landscape_version"] = __version__
            f.attrs["command"] = command if command is not None else shlex.join(sys.argv)
            for key, value in (attrs or {}).items():
                f.attrs[key] = _attr(value)
            for name, value in datasets.items():
                f.create_dataset(name, data=_array(value))
            group = f.create_group("summary")
            for key, value in (summary or {}).items():
                group.attrs[key] = _attr(value)

    atomic_write(path, write)


def _array(value: Any) -> np.ndarray:
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=h5py.string_dtype())
    return np.asarray(value)


def _attr(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)) and not (
        value and all(isinstance(v, (int, float)) for v in value)
    ):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else value
