"""The table of every reproduced claim on both pairs, generated from the committed files:
each cell is the verdict the claim's code wrote into its file, so no number in it is typed
by hand."""

from __future__ import annotations

import h5py

from landscape.experiments.recipes import PAIRS, results_folder
from landscape.experiments.repro import claims
from landscape.experiments.tables import ROOT, register_table


@register_table("claims")
def claims_table() -> str:
    """One row per claim: the paper's finding, then per pair the committed verdict and
    whether it held, and the command that regenerates it."""
    header = ["claim", "the paper", "synthetic pair", "held", "real pair", "held", "regenerate"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for number, (name, claim) in enumerate(claims().items(), start=1):
        cells = [f"{number}. {claim.title}", claim.paper]
        for pair in PAIRS:
            with h5py.File(ROOT / results_folder(pair) / f"{name}.h5") as f:
                held = bool(f["summary"].attrs["held"])
                cells += [str(f.attrs["verdict"]), "yes" if held else "no"]
        cells.append(f"`landscape repro {name} [--pair real]`")
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines)
