"""``explain`` on the depth claim's plain fine-tunings: each target of the pair fine-tuned
from the source with nothing frozen (the depth claim's K = 0 runs, its seeds), explained
against its initial weights with the command's defaults. The depth claim measured what
freezing each group costs; its numbers are the independent truth the explanation's
statements are checked against (tests/test_explain_depth.py)."""

from __future__ import annotations

from pathlib import Path

from landscape.experiments.repro import ReproOptions
from landscape.experiments.repro.depth import depth_run
from landscape.experiments.studies import register_study
from landscape.tune.explain import explain_runs

NAME = "explain_depth"


def explain_file(role: str) -> str:
    """The file the study writes for the target in ``role`` (near or far)."""
    return f"explain-depth-{role}.h5"


@register_study(NAME, "explain on the depth claim's plain fine-tunings, near and far")
def explain_depth(options: ReproOptions, out: Path) -> list[Path]:
    seeds = options.seeds_or(quick=(0, 1), full=(0, 1, 2))
    written = []
    for role, task in options.near_and_far().items():
        runs = [depth_run(options, role, task, 0, seed) for seed in seeds]
        options.log(f"explaining the depth claim's {role} runs ({task})")
        path = out / explain_file(role)
        explain_runs(runs, out=path, log=options.log)
        written.append(path)
    return written
