"""Yosinski et al. 2014, "How transferable are features in deep neural networks?": features
become more task-specific with depth, so transferring (and freezing) more layers costs more
the further the target is from the source.

Experiment: the demo's pre-trained test_resnet source, fine-tuned on the pair's near and far
targets (``synthetic:near`` and ``synthetic:far`` by default) with the demo's target recipe
while the first K layer groups stay frozen at the pre-trained weights (``--freeze-groups
K``, BatchNorm statistics frozen too), for K = 0 (plain fine-tuning) up to every group but
the head (a linear probe on the pre-trained features). Statistic: the drop in mean test
accuracy from K = 0 to the deepest K on far minus the same drop on near, per seed (seeds
paired across targets and depths); the claim holds when its mean is above zero by a
one-sided paired t test at 5% (``judge``, which reads only the table, so the verdict can be
recomputed from a committed file)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from finetune.groups import layer_groups
from finetune.models import create_model
from landscape.experiments.options import ReproOptions
from landscape.experiments.repro import ClaimResult, judged_outcome, register_claim
from probes.statistics import mean_and_spread, paired_t

NAME = "depth"
ROLES = ("near", "far")  # the near and the distant target, in this order
QUICK_EPOCHS = 15
ALPHA = 0.05  # the one-sided level of the paired t test the claim is judged by


def judge(result: ClaimResult) -> ClaimResult:
    """The verdict from the table alone (targets near, far x depths x seeds): the drop from
    K = 0 to the deepest K on far minus near, per seed, and its one-sided paired t test."""
    drops = result.values[:, 0] - result.values[:, -1]  # (targets, seeds)
    test = paired_t(drops[1] - drops[0], ALPHA)
    mean_drop = np.nanmean(drops, axis=1)
    verdict = (
        f"freezing K=0 -> {result.columns[-1]} groups costs {mean_drop[1]:+.3f} test accuracy "
        f"on far vs {mean_drop[0]:+.3f} on near; far minus near = {test.mean:+.3f} ± "
        f"{test.sd:.3f} (sd over {test.n} seeds), paired t = {test.t:.2f} (> {test.bar:.2f} "
        f"needed, one-sided {ALPHA:g}): {judged_outcome(test.beyond, test.mean > 0)}"
    )
    return replace(result, statistic=test.t, threshold=test.bar, held=test.beyond,
                   verdict=verdict)  # fmt: skip


def group_count(model: str) -> int:
    """How many layer groups ``model`` has (stem ... head), as ``--freeze-groups`` counts."""
    return len(layer_groups(create_model(model, num_classes=10, image_size=32)))


def freeze_depths(groups: int, quick: bool) -> list[int]:
    """K = 0 .. groups - 1 (every group but the head); quick keeps 0, the middle and the
    deepest."""
    deepest = groups - 1
    return sorted({0, deepest // 2, deepest}) if quick else list(range(groups))


def depth_cell(options: ReproOptions, role: str, task: str, frozen: int, seed: int):
    """The claim's fine-tuning of ``task`` (in ``role``) from the source with the first
    ``frozen`` groups frozen, seed ``seed``: its run's name and values."""
    recipe = options.target_recipe(task)
    epochs = QUICK_EPOCHS if options.quick else recipe["epochs"]
    values = {**recipe, "init": str(options.source_run()), "epochs": epochs,
              "freeze_groups": frozen, "seed": seed}  # fmt: skip
    return f"depth-{role}-freeze{frozen}-e{epochs}-seed{seed}", values


@register_claim(
    NAME,
    "Transferability falls with depth for distant tasks",
    "Yosinski et al. 2014: transferring and freezing more layers hurts more the more "
    "dissimilar the target is from the source (features grow task-specific with depth).",
    judge=judge,
)
def depth(options: ReproOptions) -> ClaimResult:
    tasks = tuple(options.near_and_far().values())
    recipe = options.target_recipe(tasks[0])
    seeds = options.seeds_or(quick=(0, 1), full=(0, 1, 2))
    epochs = QUICK_EPOCHS if options.quick else recipe["epochs"]
    groups = group_count(options.model)
    depths = freeze_depths(groups, options.quick)
    grid = {
        (i, j, s): depth_cell(options, ROLES[i], task, k, seed)
        for i, task in enumerate(tasks)
        for j, k in enumerate(depths)
        for s, seed in enumerate(seeds)
    }
    values, _ = options.measure(grid, (len(tasks), len(depths), len(seeds)))
    mean, spread = mean_and_spread(values)
    drop = mean[:, 0] - mean[:, -1]  # per task: K = 0 minus the deepest K
    per_seed = (values[1, 0] - values[1, -1]) - (values[0, 0] - values[0, -1])
    deepest = depths[-1]
    notes = [
        f"{options.model}, {groups} groups; K = frozen groups from the input "
        f"(K = {deepest}: only the head trains); demo target recipe "
        f"(train_per_class {recipe['train_per_class']}, {epochs} epochs, "
        f"lr {recipe['lr']}, l2 {recipe['l2']}), BN statistics frozen too.",
        "Freezing, not Yosinski's transfer-then-retrain-the-rest (AnB): the copied groups "
        "stay at the pre-trained weights and the rest fine-tune from them too.",
        f"per-seed statistic: {', '.join(f'{v:+.3f}' for v in per_seed)}",
    ]
    if len(depths) > 2 and depths[1] == 1 and drop[1] > 0:
        first = (mean[1, 0] - mean[1, 1]) / drop[1]
        notes.append(
            f"on far {100 * first:.0f}% of the drop comes from freezing the stem alone "
            "(K=1): far's low-level statistics differ, so unlike Yosinski's first layers "
            f"the stem is not general here; the other {mean[1, 1] - mean[1, -1]:+.3f} come "
            f"from K=2..{deepest}."
        )
    if drop[0] < 0:
        notes.append(
            f"on near freezing helps ({-drop[0]:.3f} higher at K={deepest}): with "
            f"{recipe['train_per_class']} images per class the pre-trained features "
            "fit and fine-tuning them only overfits."
        )
    return judge(
        ClaimResult(
            rows=list(tasks),
            columns=[f"K={k}" for k in depths],
            values=values,
            x=np.asarray(depths, dtype=float),
            xlabel="frozen layer groups K (from the input)",
            ylabel="test accuracy",
            series={task: (mean[i], spread[i]) for i, task in enumerate(tasks)},
            statistic=math.nan,
            threshold=math.nan,
            held=False,
            verdict="",
            notes=notes,
        )
    )
