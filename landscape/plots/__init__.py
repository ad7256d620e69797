"""PNG plots of result files, chosen by the file's ``kind`` attribute through the registry
of result kinds (``landscape.plots.kinds``). A plot reads only the HDF5 file, so any result
can be re-plotted later (``landscape plot F.h5``). Figures are drawn without pyplot: no
display and no global figure state."""

from __future__ import annotations

from pathlib import Path

import h5py

from finetune.distributed import processes
from finetune.errors import ConfigError, RunDirError
from finetune.rundir import atomic_write
from landscape.plots.kinds import KINDS

__all__ = ["has_plot", "plot_file"]


def has_plot(path: str | Path) -> bool:
    """Whether the result file ``path`` is of a kind with a plot."""
    with h5py.File(path, "r") as f:
        kind = KINDS.get(str(f.attrs.get("kind", "")))
    return kind is not None and kind.plot is not None


def plot_file(path: str | Path, png: str | Path | None = None) -> Path:
    """Render the result file ``path`` to ``png`` (default: beside it, same stem). A file of
    an unknown kind, of a kind without a plot, or lacking part of its kind's layout is a
    ConfigError. Under torchrun only the main process draws (the one that wrote ``path``)."""
    path = Path(path)
    png = Path(png) if png is not None else path.with_suffix(".png")
    if not processes().main:
        return png
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise RunDirError(f"cannot read {path}: {err}") from None
    with f:
        name = str(f.attrs.get("kind", ""))
        kind = KINDS.get(name)
        if kind is None:
            raise ConfigError(f"{path} is not a result file of a known kind (kind {name!r})")
        if kind.plot is None:
            plotted = ", ".join(k.name for k in KINDS.values() if k.plot is not None)
            raise ConfigError(
                f"{path} is of kind {name!r}, which has no plot (kinds with one: {plotted})"
            )
        missing = kind.layout.missing(f)
        if missing:
            raise ConfigError(f"{path} is not a whole {name!r} file: it lacks {', '.join(missing)}")
        figure = kind.plot(f)
    atomic_write(png, lambda tmp: figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    return png
