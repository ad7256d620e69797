"""The run directory contract (docs/design.md): atomic file writes, weights as safetensors,
the ``status`` file, the epochs a run kept, and reading runs back for resume and for probes
(``run_reference``: what a reference to a run's weights names)."""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from finetune.config import TrainConfig, flag_for
from finetune.errors import RunDirError

CONFIG = "config.json"
INIT = "init.safetensors"
FINAL = "final.safetensors"
FISHER = "fisher.safetensors"
RUN_H5 = "run.h5"
STATUS = "status"
CHECKPOINTS = "checkpoints"
_UMASK = os.umask(0)
os.umask(_UMASK)
LAST = "last.safetensors"
STATE = "state.pt"
EPOCHS = "epochs"
_EPOCH_FILE = re.compile(r"epoch(\d+)\.safetensors")
_EPOCH_REF = re.compile(r"(.+):epoch(\d+)")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary name beside ``path``, then rename it into place, so
    that a crash never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def save_weights(
    path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """A state dict as safetensors (contiguous CPU copies, so views and channels_last work)."""
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def save_torch(path: Path, obj: Any) -> None:
    """Plain containers of tensors and numbers, loadable with ``weights_only=True``."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise RunDirError(f"cannot read {path}: {str(err).splitlines()[0]}") from None


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise RunDirError(f"missing weights file {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise RunDirError(f"cannot read {path}: {err}") from None


def write_status(run: Path, state: str, reason: str = "") -> None:
    write_text(run / STATUS, f"{state}\n{reason}\n" if reason else f"{state}\n")


def read_status(run: Path) -> tuple[str, str]:
    """(state, reason) of a run directory."""
    try:
        lines = (run / STATUS).read_text().splitlines()
    except OSError:
        raise RunDirError(f"{run} is not a run directory (no status file)") from None
    return (lines[0] if lines else "", "\n".join(lines[1:]).strip())


def read_config(run: Path) -> dict[str, Any]:
    try:
        return json.loads((run / CONFIG).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise RunDirError(f"cannot read {run / CONFIG}: {err}") from None


def check_init_weights(run: Path, record: dict[str, Any], init: str, digest: str) -> None:
    """Refuse ``run`` when its ``config.json`` (``record``) recorded other initial weights
    than those its ``--init`` (``init``) holds now, of digest ``digest`` (a source trained
    again since): reused or resumed, it would give another run's numbers. Runs written
    before the record (``init.weights_sha256``) are taken as they are."""
    recorded = record.get("init", {}).get("weights_sha256")
    if recorded and recorded != digest:
        raise RunDirError(
            f"{run} was trained from other weights than {init} holds now; "
            f"delete {run} to train it from these"
        )


def check_new_run_dir(run: Path) -> None:
    """A new run may only go into a missing or empty folder."""
    if run.exists() and (not run.is_dir() or any(run.iterdir())):
        raise RunDirError(f"{run} already exists and is not empty; pass --resume or another --out")


def epoch_weights(run: Path, epoch: int) -> Path:
    """Where ``run`` keeps its weights at the end of ``epoch`` (from 1; --keep-every)."""
    return run / EPOCHS / f"epoch{epoch}.safetensors"


def kept_epochs(run: Path) -> list[int]:
    """The epochs whose weights ``run`` kept, in order."""
    found = (_EPOCH_FILE.fullmatch(p.name) for p in (run / EPOCHS).glob("epoch*.safetensors"))
    return sorted(int(m.group(1)) for m in found if m)


def run_reference(ref: str | Path) -> tuple[Path, Path] | None:
    """(run directory, weights file) of a reference naming a run rather than a file: a
    run directory (its final weights) or ``RUN:epochK``, the weights RUN kept at the end of
    epoch K (--keep-every); None for anything else. A kept epoch that is not there is a
    RunDirError listing those that are."""
    path = Path(ref)
    if path.is_dir():
        return path, path / FINAL
    match = _EPOCH_REF.fullmatch(str(ref))
    if match is None or path.exists():
        return None
    run, epoch = Path(match.group(1)), int(match.group(2))
    if not run.is_dir():
        raise RunDirError(f"{ref}: no run directory {run}")
    weights = epoch_weights(run, epoch)
    if not weights.exists():
        none = f"none (see {flag_for(TrainConfig, 'keep_every')})"
        kept = ", ".join(map(str, kept_epochs(run))) or none
        raise RunDirError(f"{ref}: {run} kept no weights of epoch {epoch}; kept epochs: {kept}")
    return run, weights
