"""PNG plots of result files, chosen by the file's ``kind`` attribute: its declaration
(``finetune.result_kinds``) says what the file must hold, ``landscape.plots.kinds`` which
function draws it. A plot reads only the HDF5 file, so any result can be re-plotted later
(``landscape plot F.h5``). Figures are drawn without pyplot: no display and no global figure
state."""

from __future__ import annotations

from pathlib import Path

import h5py

from finetune.distributed import processes
from finetune.errors import ConfigError, RunDirError
from finetune.result_kinds import KINDS
from finetune.rundir import atomic_write
from landscape.plots.kinds import PLOTS

__all__ = ["has_plot", "plot_file"]


def has_plot(path: str | Path) -> bool:
    """Whether the result file ``path`` is of a kind with a plot."""
    with h5py.File(path, "r") as f:
        return str(f.attrs.get("kind", "")) in PLOTS


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
        plot = PLOTS.get(name)
        if plot is None:
            plotted = ", ".join(PLOTS)
            raise ConfigError(
                f"{path} is of kind {name!r}, which has no plot (kinds with one: {plotted})"
            )
        missing = kind.missing(f)
        if missing:
            raise ConfigError(f"{path} is not a whole {name!r} file: it lacks {', '.join(missing)}")
        figure = plot(f)
    atomic_write(png, lambda tmp: figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    return png
