"""``landscape explain`` checked against what the depth claim measured: the statements of
the committed explanations of the depth claim's plain fine-tunings
(``landscape study explain_depth``, results/repro[/real]/explain-depth-*.h5) against the
depth claim's own committed numbers (depth.h5: test accuracy with the first K groups
frozen, K = 0..5, 3 seeds), read independently here.

The rule, fixed before the explanations were measured: freezing group g on top of the
groups below it costs Δ_g = acc(K = g) − acc(K = g + 1) (paired by seed; its SE over the
seeds). Then, on both pairs:

1. far needs more change than near: the sum of the body groups' rewind costs is larger on
   far than on near (the depth claim: freezing every body group costs more on far);
2. on a target where the largest Δ_g is beyond 2 SE, the group explain finds most needed
   (largest rewind cost) is that group;
3. on a target where no Δ_g is beyond 2 SE, explain calls no group adapted or rewritten.

The study's runs are the depth claim's own, one grid that a dry run lists whole.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1] / "results" / "repro"
PAIRS = {"synthetic": ROOT, "real": ROOT / "real"}
ROLES = ("near", "far")


def freezing_costs(pair: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per role: Δ_g for g = 0..4 (mean over seeds) and its SE, from depth.h5."""
    with h5py.File(PAIRS[pair] / "depth.h5") as f:
        values = f["table/values"][()]  # (targets, K = 0..5, seeds)
    costs = values[:, :-1, :] - values[:, 1:, :]
    seeds = values.shape[-1]
    return {
        role: (costs[i].mean(-1), costs[i].std(-1, ddof=1) / np.sqrt(seeds))
        for i, role in enumerate(ROLES)
    }


def explained(pair: str, role: str) -> tuple[np.ndarray, list[str]]:
    """The body groups' rewind costs (mean over the runs) and statuses."""
    with h5py.File(PAIRS[pair] / f"explain-depth-{role}.h5") as f:
        cost = f["groups/rewind_error"][()][:-1]
        status = [s.decode() for s in f["groups/status"][()]][:-1]
    return cost, status


def independent_agreement(pair: str) -> list[bool]:
    """The three statements of the rule above, read from the files here: far against near,
    then near and far."""
    costs = freezing_costs(pair)
    far, near = explained(pair, "far")[0].sum(), explained(pair, "near")[0].sum()
    agrees = [bool(far > near)]
    for role in ROLES:
        cost, se = costs[role]
        rewind, status = explained(pair, role)
        g = int(np.argmax(cost))
        if cost[g] - 2 * se[g] > 0:
            agrees.append(int(np.argmax(rewind)) == g)
        else:
            agrees.append(not {"adapted", "rewritten"} & set(status))
    return agrees


@pytest.mark.parametrize("pair", PAIRS)
def test_the_depth_claim_itself_finds_far_costlier_to_freeze(pair):
    costs = freezing_costs(pair)
    assert costs["far"][0].sum() > costs["near"][0].sum()


@pytest.mark.parametrize("pair", PAIRS)
def test_the_statements_follow_the_rule_fixed_before_measuring(pair):
    from landscape.experiments.studies.explain_depth import agreement

    assert [row[-1] for row in agreement(PAIRS[pair])] == independent_agreement(pair)


def test_the_studys_runs_are_the_depth_claims_own_one_grid(tmp_path):
    from conftest import fast_config

    from finetune import engine
    from landscape.experiments.options import ReproOptions, dry_run
    from landscape.experiments.repro import find_claim
    from landscape.experiments.studies import find_study

    source = tmp_path / "source"
    engine.train(fast_config("pretrain", data="synthetic:source", epochs=1), source)
    options = ReproOptions(quick=True, runs=tmp_path / "runs", source=source)
    study = find_study("explain_depth")
    plan, more = dry_run(lambda o: study.run(o, tmp_path / "out"), options)
    # Both targets' runs at once, before any is explained: nothing waits on a result.
    assert not more and len(plan.runs) == len(ROLES) * 2  # quick: seeds 0 and 1
    claim, _ = dry_run(find_claim("depth").run, options)
    unfrozen = {run.path for run in claim.runs if "-freeze0-" in run.name}
    assert {run.path for run in plan.runs} == unfrozen
