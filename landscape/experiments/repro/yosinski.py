"""Yosinski, Clune, Bengio, Lipson 2014, "How transferable are features in deep neural
networks?": their transfer protocol on two disjoint halves A and B of one dataset.

Networks: baseA, trained on A with the pair's source recipe (the pair's own source run
when it is trained on A alone, as the real pair's is); baseB, trained from random init on B
with the pair's target recipe at NB images per class (full: 50, 30 epochs; quick: 10, 10
epochs, and a synthetic baseA of 3 epochs instead of 6). For n = 1 .. G - 1 (G layer
groups, the head included; ``--transfer-groups n``, plus ``--freeze-groups n`` when
frozen, BatchNorm statistics frozen with them):

- AnB: the first n groups copied from baseA and frozen, the rest re-initialised and
  trained on B;
- AnB+: the same, nothing frozen (everything fine-tunes);
- BnB, BnB+: the same with the first n groups copied from baseB of the same seed.

Every network of a seed trains on B with the pair's target recipe on one training subset
(``split_seed`` = seed). baseB is the n = 0 point of every line. The paper's four findings,
each checked separately:

1. BnB dips in the middle (fragile co-adaptation of middle layers): the lowest BnB over
   interior n is below the lower of BnB at n = 1 and n = G - 1 by more than the noise;
2. BnB+ recovers: at every n BnB+ is within noise of the baseline, or above it;
3. AnB falls with n (features grow specific to A): AnB(1) - AnB(G - 1) above the noise
   and the rank correlation of n with the mean AnB negative;
4. AnB+ beats the baseline by more than the noise at every n (transfer plus fine-tuning
   generalises better).

Each finding is judged against the noise of its paired per-seed differences: the larger of
two standard errors over seeds (2 sd / sqrt(seeds), as in ``non_binary``) and the binomial
standard deviation of one test accuracy, sqrt(p (1 - p) / test images), so that a
difference smaller than any test set of that size can resolve does not count. Statistic:
the number of findings that held; the claim holds when all four do.

The measured numbers are in ``results/repro/yosinski.h5`` and
``results/repro/real/yosinski.h5`` (``landscape repro yosinski [--pair real]``). At the
synthetic quick size baseB is at chance and only the A lines carry information."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from finetune import rundir
from finetune.runs import run_summary
from landscape.experiments.options import ReproOptions, spec_slug
from landscape.experiments.repro import ClaimResult, register_claim
from landscape.experiments.repro.depth import group_count
from probes.distance import distance_between_runs
from probes.statistics import mean_and_spread, mean_sd

NAME = "yosinski"
VARIANTS = ("AnB", "AnB+", "BnB", "BnB+")  # the table's rows, in this order
FULL_PER_CLASS, QUICK_PER_CLASS = 50, 10
QUICK_EPOCHS = 10
QUICK_BASE_A_EPOCHS = 3  # baseA pre-trained here (not the pair's own source): CI time
FINDINGS = 4
# The variants' re-initialised groups (and head) are drawn with init seed = seed + this:
# fresh random weights, as the paper's, not baseB's own initial ones.
FRESH_INIT = 1000


def copy_depths(groups: int, quick: bool) -> list[int]:
    """n = 1 .. groups - 1 (every group but the head); quick keeps 1, the middle and the
    deepest."""
    deepest = groups - 1
    return sorted({1, (1 + deepest) // 2, deepest}) if quick else list(range(1, groups))


def base_b_name(b_spec: str, per_class: int, epochs: int, seed: int) -> str:
    return f"yosinski-{spec_slug(b_spec)}-baseB-nb{per_class}-e{epochs}-seed{seed}-split{seed}"


def variant_name(b_spec: str, variant: str, n: int, per_class: int, epochs: int, seed: int) -> str:
    """``AnB`` -> ``...-AnB-n3-frozen-...``; ``AnB+`` -> ``...-AnB-n3-tuned-...``."""
    role, frozen = variant.rstrip("+"), not variant.endswith("+")
    return (
        f"yosinski-{spec_slug(b_spec)}-{role}-n{n}-{'frozen' if frozen else 'tuned'}"
        f"-nb{per_class}-e{epochs}-seed{seed}-init{seed + FRESH_INIT}-split{seed}"
    )


def base_a_run(options: ReproOptions) -> Path:
    """baseA: the given source run, the pair's own source when it is trained on A alone,
    else the pair's source recipe trained on A (quick: for at most QUICK_BASE_A_EPOCHS
    epochs)."""
    a_spec = options.pair_recipes.halves[0]
    if options.source is not None:
        return options.source
    if options.pair_recipes.source_recipe(options.model)["data"] == a_spec:
        return options.source_run()
    recipe = {**options.pair_recipes.source_recipe(options.model), "data": a_spec}
    if options.quick:
        recipe["epochs"] = min(recipe["epochs"], QUICK_BASE_A_EPOCHS)
    return options.pretrain(f"yosinski-baseA-{spec_slug(a_spec)}-e{recipe['epochs']}", recipe)


def _noise(diff: np.ndarray, floor: float) -> float:
    """Two standard errors of the mean of per-seed differences, at least ``floor`` (the
    binomial sd of one test accuracy; all there is with one seed)."""
    if diff.size < 2:
        return floor
    return max(floor, float(2 * np.std(diff, ddof=1) / np.sqrt(diff.size)))


def grid(
    options: ReproOptions, b_spec: str, depths: list[int], seeds: tuple[int, ...], base_a: Path
) -> dict[tuple[int, ...], tuple[str, dict]]:
    """Every run of the protocol by its index in the (variants, [baseB, *depths], seeds)
    table: baseB in column 0 of every row (one run per seed), then each variant at each n,
    copied from baseA or from the seed's baseB."""
    recipe = options.target_recipe(b_spec)
    per_class = QUICK_PER_CLASS if options.quick else FULL_PER_CLASS
    epochs = QUICK_EPOCHS if options.quick else recipe["epochs"]
    found = {}
    for s, seed in enumerate(seeds):
        b_values = {**recipe, "train_per_class": per_class, "epochs": epochs,
                    "split_seed": seed, "seed": seed}  # fmt: skip
        b_name = base_b_name(b_spec, per_class, epochs, seed)
        for i, variant in enumerate(VARIANTS):
            found[i, 0, s] = (b_name, b_values)
            init = base_a if variant.startswith("A") else options.run_dir(b_name, b_spec)
            frozen = not variant.endswith("+")
            for j, n in enumerate(depths):
                found[i, j + 1, s] = (
                    variant_name(b_spec, variant, n, per_class, epochs, seed),
                    {**b_values, "init": str(init), "transfer_groups": n,
                     "freeze_groups": n if frozen else 0, "init_seed": seed + FRESH_INIT},
                )  # fmt: skip
    return found


def findings(values: np.ndarray, depths: list[int], floor: float) -> list[tuple[str, bool, str]]:
    """The paper's four findings from the table (variants, [baseB, *depths], seeds), each
    judged against the noise of its paired per-seed differences (at least ``floor``)."""
    mean = values.mean(axis=2)
    rows = {variant: values[i, 1:] for i, variant in enumerate(VARIANTS)}  # each (n, seeds)
    base = values[0, 0]
    found = [_dip(rows["BnB"], mean[2, 1:], depths, floor)]
    gaps = rows["BnB+"] - base  # (depths, seeds)
    worst = int(np.argmin(gaps.mean(axis=1) + [_noise(g, floor) for g in gaps]))
    found.append((
        "BnB+ recovers the baseline",
        all(g.mean() >= -_noise(g, floor) for g in gaps),
        "BnB+ minus baseline "
        + ", ".join(f"n={n} {mean_sd(g, '+.1f', 100)}" for n, g in zip(depths, gaps))
        + f" points (worst n={depths[worst]}, noise {100 * _noise(gaps[worst], floor):.1f})",
    ))  # fmt: skip
    fall = rows["AnB"][0] - rows["AnB"][-1]  # per seed: n = 1 minus n = G - 1
    rho = float(spearmanr(depths, mean[0, 1:]).statistic) if len(depths) > 1 else np.nan
    found.append((
        "AnB falls with n",
        bool(fall.mean() > _noise(fall, floor) and rho < 0),
        f"AnB(n={depths[0]}) - AnB(n={depths[-1]}) = {mean_sd(fall, '+.1f', 100)} points (noise "
        f"{100 * _noise(fall, floor):.1f}), Spearman(n, mean AnB) {rho:+.2f}",
    ))  # fmt: skip
    gains = rows["AnB+"] - base
    found.append((
        "AnB+ beats the baseline",
        all(g.mean() > _noise(g, floor) for g in gains),
        "AnB+ minus baseline " + ", ".join(
            f"n={n} {mean_sd(g, '+.1f', 100)} (noise {100 * _noise(g, floor):.1f})"
            for n, g in zip(depths, gains)
        ) + " points",
    ))  # fmt: skip
    return found


def _dip(bnb: np.ndarray, bnb_mean: np.ndarray, depths: list[int], floor: float):
    """Finding 1: BnB at the lower end minus its lowest interior value, above the noise."""
    interior = list(range(1, len(depths) - 1))
    if not interior:
        return ("BnB dips in the middle", False, "no interior n to dip at")
    k = min(interior, key=lambda j: bnb_mean[j])
    lower_end = int(np.argmin(bnb[[0, -1]].mean(axis=1))) * (len(depths) - 1)
    dip = bnb[lower_end] - bnb[k]  # per seed
    return (
        "BnB dips in the middle",
        bool(dip.mean() > _noise(dip, floor)),
        f"dip (BnB at the lower end n={depths[lower_end]} minus the lowest interior BnB, "
        f"n={depths[k]}) {mean_sd(dip, '+.1f', 100)} points (noise {100 * _noise(dip, floor):.1f})",
    )


@register_claim(
    NAME,
    "Yosinski et al. 2014's transfer protocol: AnB, AnB+, BnB, BnB+",
    "Yosinski, Clune, Bengio, Lipson 2014 on two disjoint halves A and B of one dataset: "
    "BnB dips for middle n (co-adapted layers), BnB+ recovers the baseline, AnB falls with "
    "n (features grow specific), AnB+ beats the baseline at every n.",
)
def yosinski(options: ReproOptions) -> ClaimResult:
    (b_spec,) = options.targets((options.pair_recipes.halves[1],))
    seeds = options.seeds_or(quick=(0, 1), full=(0, 1, 2))
    depths = copy_depths(group_count(options.model), options.quick)
    base_a = base_a_run(options)
    shape = (len(VARIANTS), len(depths) + 1, len(seeds))
    values, runs = options.measure(grid(options, b_spec, depths, seeds, base_a), shape)
    record = rundir.read_config(runs[0, 0, 0])["data"]
    p = float(values[0, 0].mean())
    floor = float(np.sqrt(p * (1 - p) / record["test_examples"]))
    found = findings(values, depths, floor)
    held_count = sum(held for _, held, _ in found)
    verdict = f"{held_count} of {FINDINGS} findings held ({len(seeds)} seeds): " + "; ".join(
        f"({i}) {title}: {'yes' if held else 'no'}, {detail}"
        for i, (title, held, detail) in enumerate(found, start=1)
    )
    tuned_a = [runs[1, j + 1, 0] for j in range(len(depths))]  # AnB+, the first seed
    mean, spread = mean_and_spread(values)
    return ClaimResult(
        rows=list(VARIANTS),
        columns=[f"n={n}" for n in [0, *depths]],
        values=values,
        x=np.asarray([0, *depths], dtype=float),
        xlabel="layer groups copied from the A (or B) network (n)",
        ylabel="test accuracy on B",
        series={variant: (mean[i], spread[i]) for i, variant in enumerate(VARIANTS)},
        statistic=float(held_count),
        threshold=FINDINGS - 0.5,
        held=held_count == FINDINGS,
        verdict=verdict,
        notes=notes(options, b_spec, values, depths, base_a, tuned_a, record, floor),
    )


def notes(
    options: ReproOptions,
    b_spec: str,
    values: np.ndarray,
    depths: list[int],
    base_a: Path,
    tuned_a: list[Path],
    record: dict,
    floor: float,
) -> list[str]:
    """What the table alone does not say: the setting, baseA and baseB, how far AnB+ moved,
    the noise, the deviations from the paper, and what the numbers imply at this size."""
    a_spec, groups = options.pair_recipes.halves[0], group_count(options.model)
    recipe = options.target_recipe(b_spec)
    per_class = QUICK_PER_CLASS if options.quick else FULL_PER_CLASS
    epochs = QUICK_EPOCHS if options.quick else recipe["epochs"]
    base, chance = values[0, 0], 1.0 / record["num_classes"]
    base_a_data = rundir.read_config(base_a)["config"]["data"]["spec"]
    moved = [distance_between_runs(run).total["relative_distance"] for run in tuned_a]
    found = [
        f"A = {a_spec}, B = {b_spec}; {options.model}, {groups} layer groups (stem, "
        f"{groups - 2} stages, head); n counts copied groups from the input, n = 0 is baseB "
        "(random init on B), the same runs in every row.",
        f"B training: {per_class} images per class (seed s draws its own subset, split_seed "
        f"s, shared by baseB and the four variants of seed s), {epochs} epochs, the pair's "
        f"target recipe (lr {recipe['lr']}, batch {recipe['batch_size']}, l2 {recipe['l2']}).",
        f"baseA: {base_a.name}, trained on {base_a_data}, test accuracy "
        f"{float(run_summary(base_a)['test_acc']):.3f} on A; baseB: test accuracy "
        f"{mean_sd(base)} on B over seeds.",
        "AnB+ runs of the first seed moved from w0: relative distance "
        + ", ".join(f"n={n} {d:.3f}" for n, d in zip(depths, moved)),
        "per-finding numbers are mean ± sd over seeds of per-seed paired differences; noise "
        "is the larger of 2 sd / sqrt(seeds) and the binomial sd of one test accuracy "
        f"({100 * floor:.1f} points on {record['test_examples']} test images); findings 1, 3 "
        "and 4 need the mean difference above the noise, finding 2 needs BnB+ no further "
        "below the baseline than the noise.",
        "deviations from the paper: a tiny test_resnet in layer groups (a residual stage per "
        "group) instead of AlexNet's 8 layers, with BatchNorm (frozen groups keep A's or B's "
        "running statistics); B has a few images per class rather than ImageNet's ~1,300. As in "
        "the paper the re-initialised groups are fresh random weights (init seed = seed + "
        f"{FRESH_INIT}); the data subset, order and augmentation of a seed are baseB's, so "
        "the differences between a seed's variants and its baseB are paired.",
    ]
    return found + caveats(values, depths, floor, chance, f"{per_class} images per class "
                           f"in {epochs} epochs", base_a_data, a_spec)  # fmt: skip


def caveats(
    values: np.ndarray,
    depths: list[int],
    floor: float,
    chance: float,
    training: str,
    base_a_data: str,
    a_spec: str,
) -> list[str]:
    """What the numbers imply at this size: a baseB at chance, a BnB+ above baseB, an AnB
    rising with n, a baseA not trained on A."""
    base, gaps = values[0, 0], values[3, 1:] - values[0, 0]
    rho = float(spearmanr(depths, values[0, 1:].mean(axis=1)).statistic) if len(depths) > 1 else 0
    found = []
    if base.mean() < chance + 0.05:
        found.append(
            f"baseB is within 5 points of chance ({chance:.3f}): from random init it learns "
            f"next to nothing from {training}, so BnB and "
            "BnB+ copy from an untrained network and findings 1 and 2 test nothing at this size."
        )
    if all(g.mean() > _noise(g, floor) for g in gaps):
        found.append(
            f"BnB+ beats baseB at every n (by {100 * gaps.mean():.1f} points on average): "
            "baseB is under-trained, and BnB+ trains the copied groups a second time; in the "
            "paper BnB+ only matched baseB."
        )
    if rho > 0:
        found.append(
            "AnB rises with n: with this little B data, A's frozen groups generalise better "
            "than groups re-trained on B, whereas the paper's B had ~1,300 images per class."
        )
    if base_a_data != a_spec:
        found.append(
            f"baseA is the given source run, trained on {base_a_data}, not on A = {a_spec}; "
            "if its data holds B's classes the A lines are not transfer between disjoint "
            "halves."
        )
    return found
