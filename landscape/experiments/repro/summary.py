"""The table of every reproduced claim on both pairs, generated from the committed files:
each cell is the verdict the claim's code wrote into its file, so no number in it is typed
by hand; the pairs' description with their sources' accuracies; and the one-line outcome
of every claim per pair."""

from __future__ import annotations

import h5py

from landscape.experiments.recipes import PAIRS, results_folder
from landscape.experiments.repro import NOT_DISTINGUISHABLE, claims, read_claim
from landscape.experiments.repro.checkpoints import plateaus
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


@register_table("pairs")
def pairs_table() -> str:
    """Each pair's source recipe and targets, and how converged its source is: its accuracy
    on its evaluation split at the last kept checkpoints (the checkpoints claim's source is
    the pair's source, bit for bit) and its test accuracy (the regularised_source claim's
    plain source)."""
    items = []
    for name, pair in PAIRS.items():
        recipe = pair.source_recipe("test_resnet")
        folder = ROOT / results_folder(name)
        kept, _, _ = read_claim(folder / "checkpoints.h5")
        epochs, _, _ = plateaus(kept)
        last = ", ".join(f"{a:.3f}" for a in kept.values[-3:, 0, 0])
        plain, _, _ = read_claim(folder / "regularised_source.h5")
        items.append(
            f"- **{name}** ({pair.description}): the source pre-trained on {recipe['data']} "
            f"({recipe['epochs']} epochs, SGD lr {recipe['lr']:g}, batch "
            f"{recipe['batch_size']}, {recipe.get('image_size', 32)} px), near target "
            f"{pair.near}, far target {pair.far}. Its accuracy on its evaluation split at "
            f"epochs {', '.join(map(str, epochs[-3:]))}: {last}; its test accuracy "
            f"{plain.values[0, 0, 0]:.3f}."
        )
    return "\n".join(items)


@register_table("claims-outcome")
def claims_outcome() -> str:
    """One sentence per pair: which claims held beyond their noise, which agreed only in
    sign (not distinguishable from no effect), which did not hold."""
    sentences = []
    for pair in PAIRS:
        held, sign, not_held = [], [], []
        for name in claims():
            result, _, _ = read_claim(ROOT / results_folder(pair) / f"{name}.h5")
            if result.held:
                held.append(name)
            elif NOT_DISTINGUISHABLE in result.verdict:
                sign.append(name)
            else:
                not_held.append(name)
        sentences.append(
            f"{pair.capitalize()} pair: held {', '.join(held) or 'none'}; not distinguishable "
            f"from no effect {', '.join(sign) or 'none'}; not held {', '.join(not_held) or 'none'}."
        )
    return "\n".join(sentences)
