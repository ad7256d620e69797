"""``landscape explain RUN``: what fine-tuning did to each layer group of a run, from the
probes, in numbers with their errors and a few sentences.

Per layer group (``probes.change``): the CKA of its output with the initial model's, how far
its weights moved, and its *rewind cost*: how much the error rises when only that group is
put back to its initial weights (BatchNorm re-estimated). Each body group that moved gets
one status, from the rewind cost of the error ``r`` and its standard error ``s`` alone (the
other two numbers describe it):

- **reused**: ``r + Z s <= REUSED_BELOW``: the group can go back to its pre-trained weights
  at no measurable cost; the target did not need its change;
- **rewritten**: ``r - Z s >= REWRITTEN_ABOVE``: the fine-tuned weights are needed, and
  without them the model loses more than REWRITTEN_ABOVE;
- **adapted**: ``r - Z s > REUSED_BELOW`` but not rewritten: needed, by less;
- **unclear**: the interval ``r ± Z s`` spans REUSED_BELOW, or there is no error to read
  (examples in a single batch);

a group whose weights did not move is **frozen**, and one that started from a random draw
(the head, re-initialised groups) is **new**. With several runs (seeds of one recipe) every
number is their mean and its error the standard error over the runs; with one run, the
delete-one-batch jackknife over the examples.

Optional parts: ``against`` another run (another seed, or the default recipe's run): the
loss and error barrier on the straight line between the two (BatchNorm re-estimated at each
point, jackknife errors) and the CKA of each group's output between them; ``block_shuffle``
B: the run's recipe repeated on B-pixel block-shuffled images from its init and from random
init, with the intact recipe from random init, and the share of the transfer gain that
survives the shuffle (Neyshabur, Sedghi, Zhang 2020: the part that does not need the
images' spatial structure; the rest is feature reuse). It trains three fine-tunings per run
and says so."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from finetune.config import PolicyConfig, RunConfig, build_config
from finetune.errors import ConfigError
from finetune.executors import PlannedRun, train_once
from finetune.result_files import write_result
from finetune.rundir import read_config
from finetune.runs import load_run, resolve_weights, run_summary
from landscape.geometry.barrier import barrier, batch_curve
from landscape.geometry.paths import Line
from landscape.tune.options import ExplainOptions
from probes.activations import group_layers
from probes.change import GroupChange, group_change, jackknife_batch_size
from probes.cka import cka_of_terms
from probes.inputs import RunInputs, bn_batches, eval_prep, probe_data
from probes.similarity import accumulate_cka
from probes.statistics import jackknife, plus_minus, spread

REUSED_BELOW = 0.02  # rewind cost (error, fraction) under which, with its error, a group is reused
REWRITTEN_ABOVE = 0.10  # rewind cost over which, with its error, a group is rewritten
Z = 2.0  # standard errors on each side of a number a status reads
STATUSES = ("reused", "adapted", "rewritten", "unclear", "frozen", "new")


def status_of(rise: float, error: float, *, frozen: bool = False, new: bool = False) -> str:
    """The status of a group from its rewind cost ``rise`` (error, a fraction) and that
    cost's standard error (see the module docstring)."""
    if new:
        return "new"
    if frozen:
        return "frozen"
    if math.isnan(error):
        return "unclear"
    if rise + Z * error <= REUSED_BELOW:
        return "reused"
    if rise - Z * error >= REWRITTEN_ABOVE:
        return "rewritten"
    if rise - Z * error > REUSED_BELOW:
        return "adapted"
    return "unclear"


@dataclass(frozen=True)
class Measured:
    """One number per layer group and its standard error."""

    value: np.ndarray
    se: np.ndarray

    def text(self, g: int, spec: str) -> str:
        """Group ``g``'s value in ``spec`` ± its standard error."""
        return plus_minus(self.value[g], self.se[g], spec, ".3f")


@dataclass
class Basin:
    """The run against another: the curve on the straight line between them (BatchNorm
    re-estimated), its barriers with jackknife errors, and each group's CKA between them."""

    label: str
    alphas: np.ndarray
    loss: np.ndarray
    error: np.ndarray
    loss_barrier: float
    loss_barrier_se: float
    error_barrier: float
    error_barrier_se: float
    cka: Measured

    @property
    def verdict(self) -> str:
        """``one basin`` when the error barrier is below REUSED_BELOW with its error,
        ``a barrier`` when above it, else ``unclear``."""
        low = self.error_barrier - Z * self.error_barrier_se
        high = self.error_barrier + Z * self.error_barrier_se
        if high <= REUSED_BELOW:
            return "one basin"
        if low > REUSED_BELOW:
            return "a barrier"
        return "unclear"


@dataclass
class ShuffleShare:
    """Test accuracies of the four recipes at block size ``block`` (per run: pre-trained
    and random init, intact and shuffled) and the share of the transfer gain that survives
    the shuffle, per run with its delta-method error over the test images."""

    block: int
    pretrained: np.ndarray
    random: np.ndarray
    pretrained_shuffled: np.ndarray
    random_shuffled: np.ndarray
    test_examples: int
    runs: list[str]

    @property
    def gain(self) -> np.ndarray:
        return self.pretrained - self.random

    @property
    def shuffled_gain(self) -> np.ndarray:
        return self.pretrained_shuffled - self.random_shuffled

    @property
    def share(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.shuffled_gain / self.gain

    @property
    def share_se(self) -> np.ndarray:
        """Delta-method error of each run's share from the four binomial errors."""
        n = self.test_examples

        def var(p: np.ndarray) -> np.ndarray:
            return p * (1 - p) / n

        gain, kept = self.gain, self.shuffled_gain
        with np.errstate(divide="ignore", invalid="ignore"):
            v = (var(self.pretrained_shuffled) + var(self.random_shuffled)) / gain**2 + (
                kept**2 / gain**4
            ) * (var(self.pretrained) + var(self.random))
        return np.sqrt(v)

    def summary(self) -> tuple[float, float]:
        """The share and its error: mean and SE over runs, or the one run's delta error."""
        if len(self.runs) > 1:
            s = spread(self.share)
            return s.mean, s.se
        return float(self.share[0]), float(self.share_se[0])


@dataclass
class Explanation:
    """Per layer group: status, CKA to init, movement and rewind costs (mean and error),
    with the runs they came from; the optional basin and block-shuffle parts; and the
    sentences that say it."""

    runs: list[str]
    changes: list[GroupChange]
    groups: list[str]
    status: list[str]
    cka: Measured
    movement: Measured
    rewind_error: Measured
    rewind_loss: Measured
    errors: str
    basin: Basin | None = None
    shuffle: ShuffleShare | None = None
    seconds: float = 0.0
    sentences: list[str] = field(default_factory=list)

    def table(self) -> str:
        """The per-group numbers, then the sentences."""
        c = self.changes[0]
        lines = [
            f"what fine-tuning did to {', '.join(self.runs)} against its initial weights, "
            f"on {c.examples} {c.split} images of {c.data} (errors: {self.errors})",
            f"{'group':<12s}{'status':>11s}{'CKA to init':>18s}{'moved':>16s}"
            f"{'rewind: error':>20s}{'loss':>18s}",
        ]
        for g, name in enumerate(self.groups):
            lines.append(
                f"{name:<12s}{self.status[g]:>11s}{self.cka.text(g, '.3f'):>18s}"
                f"{self.movement.text(g, '.3f'):>16s}{self.rewind_error.text(g, '+.3f'):>20s}"
                f"{self.rewind_loss.text(g, '+.3f'):>18s}"
            )
        return "\n".join([*lines, "", *self.sentences])

    def summary(self) -> dict[str, Any]:
        values: dict[str, Any] = {s: self.status.count(s) for s in STATUSES}
        values["runs"] = len(self.runs)
        values["seconds"] = self.seconds
        if self.basin is not None:
            values["loss_barrier"] = self.basin.loss_barrier
            values["loss_barrier_se"] = self.basin.loss_barrier_se
            values["error_barrier"] = self.basin.error_barrier
            values["error_barrier_se"] = self.basin.error_barrier_se
            values["basin"] = self.basin.verdict
        if self.shuffle is not None:
            values["shuffle_share"], values["shuffle_share_se"] = self.shuffle.summary()
        return values


def explain_runs(
    runs: Sequence[str | Path],
    *,
    against: str | Path | None = None,
    block_shuffle: int | None = None,
    options: ExplainOptions = ExplainOptions(),
    runs_dir: str | Path | None = None,
    out: str | Path | None = None,
    command: str | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> Explanation:
    """Explain ``runs`` (one run, or several seeds of one recipe; each against its own
    initial weights), measured where ``options`` says; with ``against``, the first run
    against that run; with ``block_shuffle`` B, the block-shuffle share (three fine-tunings
    per run, trained into ``runs_dir``, default: beside ``out``). Everything that can fail
    on the inputs is checked before anything is measured or trained; written to ``out``
    (kind ``explain``) when given."""
    if not runs:
        raise ConfigError("give at least one run to explain")
    runs = [Path(r) for r in runs]
    _check_inputs(runs, against, block_shuffle)
    started = time.perf_counter()
    changes = []
    for run in runs:
        log(f"measuring {run}: CKA to init, movement and rewind cost per layer group")
        changes.append(group_change(run, options=options))
    groups = changes[0].groups
    if any(c.groups != groups for c in changes):
        raise ConfigError("the runs to explain have different layer groups: give one recipe's runs")
    explanation = _combine([str(r) for r in runs], changes)
    if against is not None:
        log(f"comparing {runs[0]} with {against}: barrier and CKA")
        explanation.basin = basin_between(runs[0], against, options=options)
    if block_shuffle is not None:
        where = Path(runs_dir) if runs_dir else _runs_dir(out)
        log(f"block shuffle {block_shuffle}: training 3 fine-tunings per run in {where}")
        explanation.shuffle = shuffle_share(runs, block_shuffle, where)
    explanation.seconds = time.perf_counter() - started
    explanation.sentences = sentences(explanation)
    if out is not None:
        _write(Path(out), explanation, runs, against, block_shuffle, options, command)
    return explanation


def _check_inputs(runs: list[Path], against: str | Path | None, block_shuffle: int | None) -> None:
    """One line for what would fail later: a run without initial weights, an ``against``
    run of another architecture, a block size that does not divide the image."""
    for run in runs:
        config = _config(run)
        if not (config.model.init or config.model.pretrained):
            raise ConfigError(
                f"{run} was trained from random init (no --init or --pretrained): nothing was "
                "transferred to explain"
            )
    first = _config(runs[0])
    if against is not None:
        other = load_run(against, base=runs[0])
        if other.config.model.name != first.model.name:
            raise ConfigError(
                f"--against {against} is a {other.config.model.name} run; {runs[0]} is a "
                f"{first.model.name} run: compare runs of one architecture"
            )
    if block_shuffle is not None:
        size = read_config(_run_dir(runs[0]))["data"]["image_size"]
        if block_shuffle < 1 or size % block_shuffle:
            raise ConfigError(
                f"--block-shuffle {block_shuffle} must divide the runs' image size {size}"
            )


def _run_dir(ref: str | Path) -> Path:
    """The run directory of a run reference (a directory, RUN:epochK or a weights file)."""
    return resolve_weights(ref)[0]


def _config(ref: str | Path) -> RunConfig:
    record = read_config(_run_dir(ref))
    return build_config(record["kind"], record["config"])


def _combine(runs: list[str], changes: list[GroupChange]) -> Explanation:
    """Means and errors per group: over the runs when there are several, else the one
    run's jackknife errors (the movement of one run is exact)."""
    several = len(changes) > 1

    def measured(name: str) -> Measured:
        values = np.stack([getattr(c, name) for c in changes])
        if several:
            spreads = [spread(values[:, g]) for g in range(values.shape[1])]
            return Measured(np.array([s.mean for s in spreads]), np.array([s.se for s in spreads]))
        se = getattr(changes[0], f"{name}_se", None)
        return Measured(values[0], se if se is not None else np.zeros(values.shape[1]))

    cka, movement = measured("cka"), measured("movement")
    rewind_error, rewind_loss = measured("rewind_error"), measured("rewind_loss")
    new = [all(c.new[g] for c in changes) for g in range(len(changes[0].groups))]
    frozen = [all(c.frozen[g] for c in changes) for g in range(len(changes[0].groups))]
    status = [
        status_of(rewind_error.value[g], rewind_error.se[g], frozen=frozen[g], new=new[g])
        for g in range(len(new))
    ]
    errors = (
        f"standard error over {len(changes)} runs"
        if several
        else f"jackknife over {changes[0].batches} batches"
    )
    return Explanation(runs, changes, changes[0].groups, status, cka, movement, rewind_error,
                       rewind_loss, errors)  # fmt: skip


def basin_between(
    run: str | Path,
    other: str | Path,
    *,
    options: ExplainOptions = ExplainOptions(),
) -> Basin:
    """The straight line from ``run`` to ``other`` on ``options``' examples (BatchNorm
    re-estimated at each point) with its barriers and their jackknife errors over batches,
    and each group's output CKA between the two runs."""
    runtime = options.runtime()
    a = load_run(run, device=runtime.device)
    b = load_run(other, base=run, device=runtime.device)
    source = probe_data(a, runtime, options)
    batch_size = options.batch_size or jackknife_batch_size(len(source))
    data = source.fixed(batch_size, runtime.processes, minimum=4)
    prep_a, prep_b = eval_prep(a, runtime), eval_prep(b, runtime)
    layers = group_layers(a.model)
    terms = accumulate_cka(
        a.model, b.model, ((prep_a(x), prep_b(x)) for x, _ in data), layers, layers,
        runtime=runtime, keep_batches=True,
    ).batch_terms()  # fmt: skip
    n = len(layers)
    cka, cka_se = jackknife(terms, lambda t: np.diagonal(cka_of_terms(t, n, n)).copy())
    line = Line(a.model, a.model.state_dict(), b.model.state_dict(), labels=(a.label, b.label))
    inputs = RunInputs(a.model, prep_a, runtime, source.spec, batch_size, data,
                       bn_batches(a, runtime, options, batch_size))  # fmt: skip
    points = options.points
    alphas = np.linspace(0.0, 1.0, points)
    curve = batch_curve(line, alphas, inputs)  # (points, batches, 2)
    sizes = np.asarray(data.sizes, dtype=np.float64)
    parts = np.concatenate(
        [curve.transpose(1, 0, 2).reshape(len(sizes), -1), sizes[:, None]], axis=1
    )

    def barriers(total: np.ndarray) -> np.ndarray:
        sums, count = total[:-1].reshape(points, 2), total[-1]
        loss, error = sums[:, 0] / count, 1.0 - sums[:, 1] / count
        return np.array([barrier(alphas, loss).linear, barrier(alphas, error).linear])

    (loss_barrier, error_barrier), (loss_se, error_se) = jackknife(parts, barriers)
    totals = curve.sum(axis=1)
    return Basin(
        label=b.label,
        alphas=alphas,
        loss=totals[:, 0] / sizes.sum(),
        error=1.0 - totals[:, 1] / sizes.sum(),
        loss_barrier=float(loss_barrier),
        loss_barrier_se=float(loss_se),
        error_barrier=float(error_barrier),
        error_barrier_se=float(error_se),
        cka=Measured(cka, cka_se),
    )


def random_init_recipe(config: RunConfig) -> RunConfig:
    """``config``'s recipe from random init: no initial weights, so nothing transferred,
    frozen or pulled toward them (no L2-SP, no staged or surgical training); the optimiser,
    schedule, data and plain L2 as they were."""
    policy = PolicyConfig(lr_decay=config.policy.lr_decay, lr_mult=config.policy.lr_mult)
    model = replace(config.model, init=None, pretrained=False)
    reg = replace(config.reg, l2sp=(0.0,), preset="none")
    return replace(config, model=model, policy=policy, reg=reg)


def shuffle_share(runs: Sequence[Path], block: int, runs_dir: Path) -> ShuffleShare:
    """For each run: its recipe from random init, and both recipes on ``block``-pixel
    block-shuffled images (one fixed permutation, as the paper), trained into ``runs_dir``
    (named by their configuration's hash, reused when there); their test accuracies with
    the run's own."""
    accuracy: dict[str, list[float]] = {k: [] for k in ("pt", "ri", "pt_b", "ri_b")}
    examples = 0
    for run in runs:
        config = _config(run)
        random = random_init_recipe(config)
        trained = {
            "pt": _run_dir(run),
            "ri": _trained(random, runs_dir),
            "pt_b": _trained(_shuffled(config, block), runs_dir),
            "ri_b": _trained(_shuffled(random, block), runs_dir),
        }
        for key, path in trained.items():
            accuracy[key].append(float(run_summary(path)["test_acc"]))
        examples = int(read_config(_run_dir(run))["data"]["test_examples"])
    return ShuffleShare(
        block,
        *(np.array(accuracy[k]) for k in ("pt", "ri", "pt_b", "ri_b")),
        test_examples=examples,
        runs=[str(r) for r in runs],
    )


def _shuffled(config: RunConfig, block: int) -> RunConfig:
    return replace(config, data=replace(config.data, block_shuffle=block))


def _trained(config: RunConfig, runs_dir: Path) -> Path:
    run = runs_dir / f"explain-{config.hash()[:12]}"
    train_once(PlannedRun(config, run))
    return run


def _runs_dir(out: str | Path | None) -> Path:
    """Where the block-shuffle runs go without ``runs_dir``: beside ``out``."""
    if out is None:
        return Path("results/explain/runs")
    out = Path(out)
    return out.parent / f"{out.stem}-runs"


def sentences(e: Explanation) -> list[str]:
    """The explanation in words: the groups by status, each with the numbers behind it,
    then the basin and the block-shuffle share when measured."""
    split = e.changes[0].split
    lines = []
    for status in ("rewritten", "adapted", "reused", "unclear", "frozen", "new"):
        named = [g for g, s in enumerate(e.status) if s == status]
        if named:
            lines.append(f"{status}: " + "; ".join(_group_sentence(e, g, split) for g in named))
    if e.basin is not None:
        b = e.basin
        lines.append(
            f"against {b.label}: {b.verdict} (error barrier {100 * b.error_barrier:.1f} ± "
            f"{100 * b.error_barrier_se:.1f} points, loss barrier {b.loss_barrier:.3f} ± "
            f"{b.loss_barrier_se:.3f} on the straight line, BatchNorm re-estimated); output "
            f"CKA between the two runs {_range(b.cka.value)} across the groups"
        )
    if e.shuffle is not None:
        s = e.shuffle
        share, share_se = s.summary()
        lines.append(
            f"block shuffle {s.block} px: {100 * share:.0f} ± {100 * share_se:.0f}% of the "
            f"transfer gain survives ({100 * s.gain.mean():+.1f} points intact, "
            f"{100 * s.shuffled_gain.mean():+.1f} shuffled): that part does not need the "
            "images' spatial structure; the rest is feature reuse"
        )
    return lines


def _group_sentence(e: Explanation, g: int, split: str) -> str:
    name = e.groups[g]
    if e.status[g] == "frozen":
        return f"{name} (its weights did not move)"
    rise = 100 * e.rewind_error.value[g]
    rise_se = 100 * e.rewind_error.se[g]
    helps = (
        " - the reset helps: the group's change did not carry over to these images"
        if rise + Z * rise_se < 0
        else ""
    )
    return (
        f"{name} (reset to its initial weights, the {split} error changes by {rise:+.1f} ± "
        f"{rise_se:.1f} points{helps}; CKA to init {e.cka.value[g]:.2f} ± {e.cka.se[g]:.2f}; "
        f"moved {100 * e.movement.value[g]:.1f}% of its norm)"
    )


def _range(values: np.ndarray) -> str:
    return f"{values.min():.2f}-{values.max():.2f}"


def _write(
    out: Path,
    e: Explanation,
    runs: list[Path],
    against: str | Path | None,
    block_shuffle: int | None,
    options: ExplainOptions,
    command: str | None,
) -> None:
    c = e.changes[0]
    datasets: dict[str, Any] = {
        "groups/names": e.groups,
        "groups/status": e.status,
        "sentences": e.sentences,
    }
    for name in ("cka", "movement", "rewind_error", "rewind_loss"):
        measured = getattr(e, name)
        datasets[f"groups/{name}"] = measured.value
        datasets[f"groups/{name}_se"] = measured.se
        datasets[f"runs/{name}"] = np.stack([getattr(ch, name) for ch in e.changes])
    if e.basin is not None:
        datasets.update({
            "basin/alpha": e.basin.alphas, "basin/loss": e.basin.loss,
            "basin/error": e.basin.error, "basin/cka": e.basin.cka.value,
            "basin/cka_se": e.basin.cka.se,
        })  # fmt: skip
    if e.shuffle is not None:
        s = e.shuffle
        datasets.update({
            "shuffle/pretrained": s.pretrained, "shuffle/random": s.random,
            "shuffle/pretrained_shuffled": s.pretrained_shuffled,
            "shuffle/random_shuffled": s.random_shuffled, "shuffle/share": s.share,
            "shuffle/share_se": s.share_se,
        })  # fmt: skip
    records = [read_config(_run_dir(run)) for run in runs]
    write_result(
        out,
        "explain",
        datasets,
        attrs={
            "runs": [str(r) for r in runs],
            "config_hashes": [r["config_hash"] for r in records],
            "model": records[0]["config"]["model"]["name"],
            "data": c.data,
            "split": c.split,
            "examples": c.examples,
            "batches": c.batches,
            "bn_batches": c.bn_batches,
            "errors": e.errors,
            "rules": {"reused_below": REUSED_BELOW, "rewritten_above": REWRITTEN_ABOVE, "z": Z},
            "against": str(against) if against is not None else "",
            "block_shuffle": block_shuffle or 0,
            "seed": options.seed,
            "device": str(options.runtime().device),
        },
        summary=e.summary(),
        command=command,
    )
