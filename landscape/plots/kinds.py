"""Every kind of result file, one entry each: the library functions that write it, the
layout its files hold, and the function that plots it. ``plot_file`` dispatches through
``KINDS``; tests/test_results_layout.py checks each layout against real files and against
results/README.md, and that every ``write_result`` call writes a kind listed here. Adding a
kind is adding one entry. (A writer's module must not import ``landscape.plots`` at import
time: this module imports every writer.)"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h5py
from matplotlib.figure import Figure

from finetune import engine
from landscape.bench.barrier import bench_barrier
from landscape.bench.cka import bench_cka
from landscape.bench.sharpness import bench_sharpness
from landscape.bench.training import bench_regularisers, bench_train
from landscape.experiments.repro import run_claim
from landscape.experiments.shuffle import run_shuffle
from landscape.experiments.studies.fit_vs_depth import fit_vs_depth
from landscape.experiments.studies.out_of_sample import out_of_sample
from landscape.experiments.studies.rules_left_out import rules_left_out
from landscape.geometry.barrier import barrier_between
from landscape.geometry.criticality import module_criticality
from landscape.geometry.plane import plane_around, plane_through
from landscape.geometry.sharpness import sharpness
from landscape.plots.experiments import plot_out_of_sample, plot_repro, plot_shuffle
from landscape.plots.geometry import (
    plot_barrier,
    plot_criticality,
    plot_plane,
    plot_sharpness,
)
from landscape.plots.probes import plot_cka, plot_distance, plot_fit
from landscape.plots.runs import plot_run
from landscape.plots.tune import plot_explain, plot_explain_sweep
from landscape.tune.explain import explain_runs
from landscape.tune.explain_sweep import explain_sweep
from landscape.tune.sweep import run_sweep, sweep_report
from probes.distance import distance_between_runs
from probes.fit import fit_measures
from probes.similarity import compare_runs

# Root attributes of every kind (finetune.result_files.write_result), not repeated below.
COMMON_ATTRIBUTES = ("kind", "schema_version", "created", "landscape_version", "command")
# A layout's sections, and how a name of each is spoken of in an error.
SECTIONS = {"attributes": "root attribute", "datasets": "dataset", "summary": "summary attribute"}


@dataclass(frozen=True)
class Layout:
    """The names a kind's files hold besides the common root attributes: root attributes,
    datasets (HDF5 paths, groups joined by '/') and attributes of the ``summary`` group.
    ``optional_*`` list the names only some files hold (the condition is in results/README.md)."""

    attributes: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    summary: tuple[str, ...] = ()
    optional_datasets: tuple[str, ...] = ()
    optional_summary: tuple[str, ...] = ()

    def required(self) -> dict[str, set[str]]:
        """The names every file of the kind holds, by section."""
        return {
            "attributes": set(self.attributes),
            "datasets": set(self.datasets),
            "summary": set(self.summary),
        }

    def names(self) -> dict[str, set[str]]:
        """Every name the layout lists, required or optional, by section."""
        return {
            "attributes": set(self.attributes),
            "datasets": set(self.datasets) | set(self.optional_datasets),
            "summary": set(self.summary) | set(self.optional_summary),
        }

    def missing(self, f: h5py.File) -> list[str]:
        """The required names ``f`` lacks, e.g. ``["dataset 'alpha'"]``."""
        held = contents(f)
        return [
            f"{SECTIONS[section]} {name!r}"
            for section, names in self.required().items()
            for name in sorted(names - held[section])
        ]

    def unlisted(self, f: h5py.File) -> list[str]:
        """The names ``f`` holds that the layout does not list."""
        listed = self.names()
        return [
            f"{SECTIONS[section]} {name!r}"
            for section, names in contents(f).items()
            for name in sorted(names - listed[section])
        ]


def contents(f: h5py.File) -> dict[str, set[str]]:
    """What a result file holds, by layout section (common root attributes left out)."""
    datasets: set[str] = set()
    f.visititems(lambda name, obj: datasets.add(name) if isinstance(obj, h5py.Dataset) else None)
    return {
        "attributes": set(f.attrs) - set(COMMON_ATTRIBUTES),
        "datasets": datasets,
        "summary": set(f["summary"].attrs) if "summary" in f else set(),
    }


@dataclass(frozen=True)
class ResultKind:
    """One kind of result file: its name (the files' ``kind`` attribute), the library
    functions that write it, its layout, and its plot (None: the kind has none)."""

    name: str
    writers: tuple[Callable[..., Any], ...]
    layout: Layout
    plot: Callable[[h5py.File], Figure] | None = None


# Lists of names are kept dense, several to a line.
# fmt: off
COMPARED_RUNS = (
    "run_a", "run_b", "weights_a", "weights_b", "label_a", "label_b",
    "config_hash_a", "config_hash_b",
)

KINDS: dict[str, ResultKind] = {
    kind.name: kind
    for kind in (
        ResultKind(
            "run",
            (engine.train, engine.resume),
            Layout(
                attributes=("config", "config_hash", "model", "data", "steps_per_epoch"),
                datasets=(
                    "steps/loss", "steps/lr", "epochs/epoch", "epochs/train_loss",
                    "epochs/train_acc", "epochs/eval_loss", "epochs/eval_acc",
                    "epochs/seconds", "epochs/images_per_s", "epochs/lr", "groups/names",
                    "groups/distance_to_init", "groups/relative_distance_to_init",
                    "penalties/names", "penalties/values",
                ),
                # Written once the run has kept an epoch (--keep-every); with --auto-lr rgn.
                optional_datasets=("kept/epoch", "kept/eval_acc", "rgn/scale"),
                # Written once the run has ended; a checkpoint's file has none.
                optional_summary=(
                    "status", "epochs", "steps", "final_train_loss", "final_eval_loss",
                    "final_eval_acc", "best_eval_acc", "test_loss", "test_acc", "train_seconds",
                ),
            ),
            plot_run,
        ),
        ResultKind(
            "cka",
            (compare_runs,),
            Layout(
                attributes=(
                    *COMPARED_RUNS, "data", "split", "pool", "batch_size", "estimator", "device",
                ),
                datasets=("cka", "layers_a", "layers_b"),
                optional_datasets=("diagonal",),
                summary=("examples", "mean_diagonal", "seconds"),
            ),
            plot_cka,
        ),
        ResultKind(
            "distance",
            (distance_between_runs,),
            Layout(
                attributes=(*COMPARED_RUNS, "model"),
                datasets=(
                    "tensors/names", "tensors/group", "tensors/numel", "tensors/distance",
                    "tensors/relative_distance", "tensors/cosine", "groups/names",
                    "groups/distance", "groups/relative_distance", "groups/cosine",
                ),
                summary=("distance", "relative_distance", "cosine"),
            ),
            plot_distance,
        ),
        ResultKind(
            "fit",
            (fit_measures,),
            Layout(
                attributes=(
                    "model", "init", "data", "train_per_class", "val_fraction", "split_seed",
                    "input", "k", "pool", "linear_l2", "bn_measure", "protocol", "folds",
                    "seed", "device",
                ),
                datasets=(
                    "groups/names", "groups/features", "groups/knn_acc", "groups/knn_se",
                    "groups/linear_acc", "groups/linear_se", "groups/logme",
                    "groups/logme_se", "groups/bn_distance", "groups/bn_se", "examples/label",
                    "examples/fold", "examples/knn_correct", "examples/linear_correct",
                    "bn/layers", "bn/group", "bn/distance", "logme/evidence", "logme/alpha",
                    "logme/beta",
                ),
                summary=(
                    "logme", "logme_se", "pre_logits_features", "classes", "train_examples",
                    "train_per_class", "seconds",
                ),
            ),
            plot_fit,
        ),
        ResultKind(
            "sweep",
            (run_sweep, sweep_report),
            Layout(
                attributes=(
                    "study", "storage", "space", "space_file", "objective", "direction",
                    "objective_kind", "splits", "folds", "resolution", "objective_note",
                ),
                datasets=(
                    "trials/number", "trials/state", "trials/value", "trials/test_acc",
                    "trials/seconds", "trials/eval_acc", "trials/split_values",
                    "trials/value_se", "trials/eval_loss", "trials/eval_examples", "trials/run",
                    "trials/runs", "trials/params", "trials/config", "params/names",
                    "params/values",
                ),
                summary=(
                    "best_trial", "best_value", "best_value_se", "tied", "best_test_acc",
                    "best_run", "best_params", "complete", "pruned", "fail", "running", "waiting",
                ),
            ),
        ),
        ResultKind(
            "shuffle",
            (run_shuffle,),
            Layout(
                attributes=("config", "model", "data", "init", "scheme", "image_size"),
                datasets=(
                    "block_sizes", "seeds", "acc_pretrained", "acc_scratch", "gap",
                    "runs_pretrained", "runs_scratch",
                ),
                summary=("gap_intact", "gap_smallest_block", "pretrained_intact", "scratch_intact"),
            ),
            plot_shuffle,
        ),
        ResultKind(
            "barrier",
            (barrier_between,),
            Layout(
                attributes=(
                    *COMPARED_RUNS, "model", "data", "split", "points", "bn_batches",
                    "bn_examples", "batch_size", "seed", "device",
                ),
                datasets=("alpha", "raw/loss", "raw/error"),
                # With BatchNorm and bn_batches > 0.
                optional_datasets=("bn/loss", "bn/error"),
                summary=(
                    "curve", "examples", "loss_a", "loss_b", "error_a", "error_b",
                    "loss_barrier", "loss_barrier_at", "loss_barrier_mean",
                    "loss_barrier_mean_at", "error_barrier", "error_barrier_at",
                    "error_barrier_mean", "error_barrier_mean_at", "raw_loss_barrier",
                    "raw_error_barrier", "seconds",
                ),
            ),
            plot_barrier,
        ),
        ResultKind(
            "plane",
            (plane_through, plane_around),
            Layout(
                attributes=(
                    "mode", "directions", "runs", "weights", "config_hashes", "model", "data",
                    "split", "grid", "margin", "span", "seed", "bn_batches", "bn_examples",
                    "batch_size", "device",
                ),
                datasets=(
                    "xcoordinates", "ycoordinates", "loss", "error", "train_loss", "train_acc",
                    "runs/labels", "runs/x", "runs/y",
                ),
                summary=(
                    "examples", "points", "min_loss", "min_loss_x", "min_loss_y", "max_loss",
                    "min_error", "seconds",
                ),
            ),
            plot_plane,
        ),
        ResultKind(
            "sharpness",
            (sharpness,),
            Layout(
                attributes=(
                    "run", "weights", "label", "config_hash", "model", "data", "batch_size",
                    "iterations", "tol", "hutchinson_samples", "vectors_per_pass", "seed",
                    "device",
                ),
                datasets=(
                    "groups/names", "groups/parameters", "groups/top_eigenvalue",
                    "groups/eigen_iterations", "groups/converged", "groups/trace",
                    "groups/trace_se", "hutchinson/samples",
                ),
                summary=(
                    "examples", "batches", "loss", "parameters", "top_eigenvalue",
                    "eigen_iterations", "converged", "trace", "trace_se", "hvps", "passes",
                    "seconds", "seconds_per_hvp",
                ),
            ),
            plot_sharpness,
        ),
        ResultKind(
            "criticality",
            (module_criticality,),
            Layout(
                attributes=(
                    *COMPARED_RUNS, "model", "data", "head", "points", "epsilon", "draws",
                    "bn_batches", "bn_examples", "batch_size", "seed", "device",
                ),
                datasets=(
                    "alphas", "sigmas", "groups/names", "groups/parameters", "groups/distance",
                    "groups/weight_rms", "groups/criticality", "groups/best_alpha",
                    "groups/best_sigma", "curves/error", "curves/loss", "whole/error",
                    "whole/loss", "grid/sigma", "grid/error", "grid/objective",
                    "grid/satisfied",
                ),
                summary=(
                    "examples", "final_error", "final_loss", "initial_error", "initial_loss",
                    "most_critical", "max_criticality", "critical_groups", "evaluations",
                    "seconds",
                ),
            ),
            plot_criticality,
        ),
        ResultKind(
            "explain",
            (explain_runs,),
            Layout(
                attributes=(
                    "runs", "config_hashes", "model", "data", "split", "examples", "batches",
                    "bn_batches", "errors", "rules", "against", "block_shuffle", "seed",
                    "device",
                ),
                datasets=(
                    "groups/names", "groups/status", "groups/cka", "groups/cka_se",
                    "groups/movement", "groups/movement_se", "groups/rewind_error",
                    "groups/rewind_error_se", "groups/rewind_loss", "groups/rewind_loss_se",
                    "runs/cka", "runs/movement", "runs/rewind_error", "runs/rewind_loss",
                    "sentences",
                ),
                # basin/*: with --against; shuffle/*: with --block-shuffle.
                optional_datasets=(
                    "basin/alpha", "basin/loss", "basin/error", "basin/cka", "basin/cka_se",
                    "shuffle/pretrained", "shuffle/random", "shuffle/pretrained_shuffled",
                    "shuffle/random_shuffled", "shuffle/share", "shuffle/share_se",
                ),
                summary=(
                    "reused", "adapted", "rewritten", "unclear", "frozen", "new", "runs",
                    "seconds",
                ),
                optional_summary=(
                    "loss_barrier", "loss_barrier_se", "error_barrier", "error_barrier_se",
                    "basin", "shuffle_share", "shuffle_share_se",
                ),
            ),
            plot_explain,
        ),
        ResultKind(
            "explain_sweep",
            (explain_sweep,),
            Layout(
                attributes=("study", "storage", "evaluator", "data", "split", "examples", "seed"),
                datasets=(
                    "groups/names", "trials/number", "trials/value", "trials/run",
                    "trials/params", "sentences", "probes/cka", "probes/movement",
                    "probes/rewind_error", "objective/cka_rho", "objective/cka_low",
                    "objective/cka_high", "objective/movement_rho", "objective/movement_low",
                    "objective/movement_high", "objective/rewind_error_rho",
                    "objective/rewind_error_low", "objective/rewind_error_high",
                ),
                # With at least two complete trials and an option drawn by all of them.
                optional_datasets=("importance/names", "importance/values"),
                summary=("complete", "probed", "seconds"),
            ),
            plot_explain_sweep,
        ),
        ResultKind(
            "fit_vs_depth",
            (fit_vs_depth,),
            Layout(
                attributes=("pair", "source", "measures"),
                datasets=(
                    "targets", "roles", "accuracy",
                    *(f"{part}/{m}" for part in ("scores", "rho", "p_value", "pooled")
                      for m in ("knn_acc", "linear_acc", "group_logme", "bn_distance")),
                ),
                summary=("targets",),
            ),
        ),
        ResultKind(
            "rules_left_out",
            (rules_left_out,),
            Layout(
                attributes=("pair", "model", "seeds", "current", "t_needed"),
                datasets=("targets", "variants/shifted_lr", "variants/fit_shift", "test_acc"),
                summary=("targets", "variants"),
            ),
        ),
        ResultKind(
            "out_of_sample",
            (out_of_sample,),
            Layout(
                attributes=("pair", "model", "source", "seeds", "trials", "quick", "rules"),
                datasets=(
                    "targets/labels", "targets/data", "targets/per_class", "targets/in_sample",
                    "targets/objective", "targets/objective_runs", "targets/objective_note",
                    "methods/names", "methods/labels", "test_acc", "cost", "chosen",
                ),
                summary=("targets", "seconds"),
            ),
            plot_out_of_sample,
        ),
        ResultKind(
            "repro",
            (run_claim,),
            Layout(
                attributes=(
                    "claim", "title", "paper", "verdict", "notes", "quick", "model", "pair",
                    "xlabel", "ylabel", "xlog",
                ),
                datasets=(
                    "table/rows", "table/columns", "table/values", "table/mean",
                    "table/spread", "plot/x", "plot/labels", "plot/mean", "plot/spread",
                ),
                summary=("held", "statistic", "threshold", "seconds"),
            ),
            plot_repro,
        ),
        ResultKind(
            "bench_train",
            (bench_train,),
            Layout(
                attributes=("config", "device"),
                summary=(
                    "model", "data", "device", "device_name", "precision", "channels_last",
                    "compile", "image_size", "batch_size", "steps", "engine_images_per_s",
                    "plain_images_per_s", "ratio",
                ),
            ),
        ),
        ResultKind(
            "bench_reg",
            (bench_regularisers,),
            Layout(
                attributes=("device",),
                summary=(
                    "model", "device_name", "precision", "image_size", "batch_size", "steps",
                    "tensors", "seconds_none", "seconds_fused", "seconds_explicit",
                    "ratio_fused", "ratio_explicit",
                ),
            ),
        ),
        ResultKind(
            "bench_cka",
            (bench_cka,),
            Layout(
                attributes=(
                    "model", "image_size", "batch_size", "precision", "layers", "peak_memory",
                    "device",
                ),
                datasets=(
                    "scaling/examples", "scaling/forward_seconds", "scaling/cka_seconds",
                    "scaling/peak_mb",
                ),
                # With torch-cka installed.
                optional_datasets=("torch_cka/layers", "torch_cka/ours", "torch_cka/theirs"),
                summary=("ratio_at_most_examples",),
                optional_summary=(
                    "torch_cka_examples", "ours_seconds", "torch_cka_seconds",
                    "max_abs_difference",
                ),
            ),
        ),
        ResultKind(
            "bench_barrier",
            (bench_barrier,),
            Layout(
                attributes=("model", "image_size", "batch_size", "precision", "repeats", "device"),
                summary=(
                    "examples", "points", "bn_batches", "bn_examples", "plain_seconds",
                    "barrier_seconds", "barrier_bn_seconds", "ratio", "ratio_bn",
                ),
            ),
        ),
        ResultKind(
            "bench_sharpness",
            (bench_sharpness,),
            Layout(
                attributes=(
                    "model", "image_size", "batch_size", "precision", "iterations", "tol",
                    "hutchinson_samples", "vectors_per_pass", "repeats", "device",
                ),
                summary=(
                    "examples", "batches", "parameters", "groups", "hvps", "passes", "seconds",
                    "seconds_per_hvp", "gradient_seconds", "hvp_in_gradients",
                    "top_eigenvalue", "trace",
                ),
            ),
        ),
    )
}
# fmt: on
