"""``explain`` on the depth claim's plain fine-tunings: each target of the pair fine-tuned
from the source with nothing frozen (the depth claim's K = 0 runs, its seeds), explained
against its initial weights with the command's defaults. The depth claim measured what
freezing each group costs; its numbers are the independent truth the explanation's
statements are checked against (tests/test_explain_depth.py)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from landscape.experiments.options import ReproOptions
from landscape.experiments.recipes import PAIRS, results_folder
from landscape.experiments.repro.depth import ROLES, depth_cell
from landscape.experiments.studies import register_study
from landscape.experiments.tables import ROOT, register_table
from landscape.tune.explain import explain_runs

NAME = "explain_depth"


def explain_file(role: str) -> str:
    """The file the study writes for the target in ``role`` (near or far)."""
    return f"explain-depth-{role}.h5"


@register_study(NAME, "explain on the depth claim's plain fine-tunings, near and far")
def explain_depth(options: ReproOptions, out: Path) -> list[Path]:
    """Both targets' runs, one grid for the executor (the depth claim's, reused when it
    trained them), then each target's explanation."""
    seeds = options.seeds_or(quick=(0, 1), full=(0, 1, 2))
    planned = {(role, seed): options.planned(*depth_cell(options, role, task, 0, seed))
               for role, task in options.near_and_far().items() for seed in seeds}  # fmt: skip
    options.train_grid(list(planned.values()))
    written = []
    for role, task in options.near_and_far().items():
        options.log(f"explaining the depth claim's {role} runs ({task})")
        path = out / explain_file(role)
        explain_runs([planned[role, seed].path for seed in seeds], out=path, log=options.log)
        written.append(path)
    return written


def freezing_costs(depth_file: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per role, from a depth claim's file: what freezing group g on top of the groups
    below it costs, acc(K = g) - acc(K = g + 1) for g = 0..4 (mean over the seeds, paired
    by seed), and its standard error over the seeds."""
    with h5py.File(depth_file) as f:
        values = f["table/values"][()]  # (targets, K, seeds)
    costs = values[:, :-1, :] - values[:, 1:, :]
    return {
        role: (costs[i].mean(-1), costs[i].std(-1, ddof=1) / np.sqrt(values.shape[-1]))
        for i, role in enumerate(ROLES)
    }


def agreement(folder: str | Path) -> list[tuple[str, str, str, bool]]:
    """The explanation's statements in ``folder`` (a pair's results) against its depth
    claim, by the rule fixed before they were measured (tests/test_explain_depth.py):
    (target, what the depth claim says, what explain says, whether they agree)."""
    folder = Path(folder)
    costs = freezing_costs(folder / "depth.h5")
    explained = {}
    for role in ROLES:
        with h5py.File(folder / explain_file(role)) as f:
            names = [s.decode() for s in f["groups/names"][()]][:-1]
            explained[role] = (f["groups/rewind_error"][()][:-1],
                               [s.decode() for s in f["groups/status"][()]][:-1])  # fmt: skip
    rows = []
    far, near = explained["far"][0].sum(), explained["near"][0].sum()
    rows.append((
        "far against near",
        f"freezing every body group costs {100 * costs['far'][0].sum():.1f} points on far, "
        f"{100 * costs['near'][0].sum():.1f} on near",
        f"summed rewind cost {100 * far:.1f} points on far, {100 * near:.1f} on near",
        bool(far > near),
    ))  # fmt: skip
    for role in ROLES:
        cost, se = costs[role]
        rewind, status = explained[role]
        g = int(np.argmax(cost))
        if cost[g] - 2 * se[g] > 0:
            most = int(np.argmax(rewind))
            rows.append((
                role,
                f"{names[g]} costs most to freeze ({100 * cost[g]:+.1f} ± {100 * se[g]:.1f})",
                f"most needed: {names[most]} (rewind cost {100 * rewind[most]:+.1f})"
                + (f"; {names[g]}: {100 * rewind[g]:+.1f}" if most != g else ""),
                most == g,
            ))  # fmt: skip
        else:
            needed = [names[i] for i, s in enumerate(status) if s in ("adapted", "rewritten")]
            rows.append((
                role,
                "no group costs measurably to freeze",
                f"groups adapted or rewritten: {', '.join(needed) or 'none'}",
                not needed,
            ))  # fmt: skip
    return rows


def agreement_table(folders: dict[str, str | Path]) -> str:
    """The documents' table of the statements of every pair (name -> its results folder)."""
    lines = [
        "| pair | target | the depth claim | explain | agree |",
        "| --- | --- | --- | --- | --- |",
    ]
    for pair, folder in folders.items():
        for target, depth, said, agrees in agreement(folder):
            lines.append(f"| {pair} | {target} | {depth} | {said} | {'yes' if agrees else 'no'} |")
    return "\n".join(lines)


@register_table("explain-depth")
def _documented_table() -> str:
    """The committed explanations of both pairs against their depth claims."""
    return agreement_table({pair: ROOT / results_folder(pair) for pair in PAIRS})
