"""Every result kind the code writes has one entry in the registry of kinds, and its
layout there, its section of results/README.md and the files the code writes agree."""

import ast
import importlib
import json
import re
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import fast_config

from finetune import engine

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "results" / "README.md"
COMMON = {"kind", "schema_version", "created", "landscape_version", "command"}
# The README's table of each section of a layout (landscape.plots.kinds.Layout.names).
TABLES = {"attributes": "Root attributes", "datasets": "Datasets", "summary": "Summary attributes"}


def section(kind: str) -> str:
    """The text of one kind's section of the README."""
    return README.read_text().split(f"## kind `{kind}`", 1)[1].split("\n## ", 1)[0]


def documented(kind: str) -> dict[str, set[str]]:
    """The attribute, dataset and summary names of one kind's section of the README."""
    parts = re.split(r"\n(Root attributes|Datasets|Summary attributes)", section(kind))
    tables = dict(zip(parts[1::2], parts[2::2]))
    return {
        name: set(re.findall(r"^\| `([^`]+)` \|", tables.get(name, ""), flags=re.M))
        for name in ("Root attributes", "Datasets", "Summary attributes")
    }


def documented_device() -> set[str]:
    """The keys of the device description that every benchmark file carries."""
    section = README.read_text().split("## Benchmark files", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.M))


def described_device(path: Path) -> dict:
    with h5py.File(path) as f:
        return json.loads(f.attrs["device"])


def actual(path: Path) -> dict[str, set[str]]:
    datasets: set[str] = set()
    with h5py.File(path) as f:
        f.visititems(
            lambda name, obj: datasets.add(name) if isinstance(obj, h5py.Dataset) else None
        )
        return {
            "Root attributes": set(f.attrs) - COMMON,
            "Datasets": datasets,
            "Summary attributes": set(f["summary"].attrs),
        }


def registry_problems(path: Path) -> list[str]:
    """What the file at ``path`` lacks of its kind's registered layout, and what it holds
    that the layout does not list."""
    from landscape.plots.kinds import KINDS

    with h5py.File(path) as f:
        layout = KINDS[str(f.attrs["kind"])].layout
        return layout.missing(f) + layout.unlisted(f)


def written_kinds() -> set[str]:
    """The kind of every ``write_result`` call in the library's source: its second
    argument, which must be a string literal for the registry to be checkable."""
    kinds = set()
    for package in ("finetune", "probes", "landscape"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                func = getattr(node, "func", None)
                if getattr(func, "id", getattr(func, "attr", None)) != "write_result":
                    continue
                kind = node.args[1]
                assert isinstance(kind, ast.Constant), f"{path}:{node.lineno}: kind not literal"
                kinds.add(kind.value)
    return kinds


def named_functions(text: str) -> list[object]:
    """The objects that the dotted paths in backticks of ``text`` name (paths that do not
    import, such as ``config.json``, are left out)."""
    found = []
    for path in re.findall(r"`((?:\w+\.)+\w+)`", text):
        module, _, name = path.rpartition(".")
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return found


def test_common_attributes_are_documented():
    from landscape.plots.kinds import COMMON_ATTRIBUTES

    assert set(COMMON_ATTRIBUTES) == COMMON
    assert all(f"`{name}`" in README.read_text() for name in COMMON)


def test_every_kind_the_code_writes_has_one_registry_entry():
    from landscape.plots.kinds import KINDS

    written = written_kinds()
    assert {"run", "barrier", "sharpness", "criticality", "repro", "bench_cka"} <= written
    assert set(KINDS) == written
    assert all(name == kind.name for name, kind in KINDS.items())


def test_every_registered_layout_is_the_documented_one():
    from landscape.plots.kinds import KINDS

    registered = {
        name: {TABLES[part]: names for part, names in kind.layout.names().items()}
        for name, kind in KINDS.items()
    }
    assert registered == {name: documented(name) for name in KINDS}


def test_the_readme_names_the_functions_that_write_each_kind():
    from landscape.plots.kinds import KINDS

    unnamed = {
        name: [w.__name__ for w in kind.writers if w not in named_functions(section(name))]
        for name, kind in KINDS.items()
    }
    assert unnamed == {name: [] for name in KINDS}


def test_the_readme_lists_the_kinds_with_a_plot():
    from landscape.plots.kinds import KINDS

    listed = re.search(r"Kinds with a plot: ([^.]+)\.", README.read_text())
    assert listed is not None
    assert set(re.findall(r"`(\w+)`", listed.group(1))) == {
        name for name, kind in KINDS.items() if kind.plot is not None
    }


def committed_results(root: Path = ROOT) -> list[Path]:
    """The result files git tracks under ``root``/results: never what a user's own runs
    (the demo's files, a claim's run directories, all git-ignored) left there."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", "results/*.h5"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(root / name for name in listed.split("\0") if name)


def test_committed_results_are_the_tracked_files_only(tmp_path):
    # What `landscape demo` leaves under results/ (git-ignored) is not a committed result.
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("results/demo/\n")
    for name in ("results/repro/claim.h5", "results/demo/cka.h5", "results/new.h5"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    git("add", ".gitignore", "results/repro/claim.h5")
    assert committed_results(tmp_path) == [tmp_path / "results/repro/claim.h5"]


def test_committed_results_match_their_registered_and_documented_layout():
    files = committed_results()
    assert len(files) >= 6
    for path in files:
        with h5py.File(path) as f:
            kind = str(f.attrs["kind"])
        # The registry says which names are optional (explain's basin/* with --against);
        # every name the file holds is in its kind's section of the README.
        assert registry_problems(path) == [], path
        held, listed = actual(path), documented(kind)
        assert all(held[part] <= listed[part] for part in held), path


def test_run_h5_matches_its_documented_layout(tmp_path):
    # Keeping epochs and Auto-RGN write the optional datasets too.
    config = fast_config(epochs=1, keep_every=1, auto_lr="rgn")
    engine.train(config, tmp_path / "run", command="test")
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        assert set(f.attrs) >= COMMON and f.attrs["kind"] == "run"
    assert actual(tmp_path / "run" / "run.h5") == documented("run")
    assert registry_problems(tmp_path / "run" / "run.h5") == []


@pytest.mark.slow
def test_bench_train_matches_its_documented_layout(tmp_path):
    from landscape.bench.options import BenchOptions
    from landscape.bench.training import bench_train

    options = BenchOptions(image_size=16, batch_size=16, device="cpu")
    result = bench_train(options, steps=5, out=tmp_path / "b.h5")
    assert result.engine_images_per_s > 0 and result.plain_images_per_s > 0
    assert actual(tmp_path / "b.h5") == documented("bench_train")
    assert registry_problems(tmp_path / "b.h5") == []
    assert set(described_device(tmp_path / "b.h5")) == documented_device()


@pytest.mark.slow
def test_bench_cka_matches_its_documented_layout_and_agrees_with_torch_cka(tmp_path):
    from landscape.bench.cka import bench_cka
    from landscape.bench.options import BenchOptions

    options = BenchOptions(image_size=16, batch_size=8, device="cpu")
    result = bench_cka(options, examples=(16,), out=tmp_path / "c.h5")
    assert [r.examples for r in result.rows] == [16]
    assert all(r.forward_seconds > 0 and r.cka_seconds > 0 for r in result.rows)
    assert result.torch_cka is not None and result.torch_cka.max_abs_difference < 1e-3
    assert actual(tmp_path / "c.h5") == documented("bench_cka")
    assert registry_problems(tmp_path / "c.h5") == []
    assert set(described_device(tmp_path / "c.h5")) == documented_device()


def test_repro_matches_its_documented_layout(tmp_path, monkeypatch):
    import landscape.experiments.repro
    from landscape.experiments.repro import ClaimResult, ReproOptions, register_claim, run_claim
    from landscape.plots import plot_file

    # The real claims register first, so restoring the registry afterwards keeps them.
    landscape.experiments.repro.claims()
    repro = landscape.experiments.repro
    monkeypatch.setattr(repro, "CLAIMS", dict(repro.CLAIMS))

    @register_claim("toy", "a toy claim", "a toy finding")
    def toy(options: ReproOptions) -> ClaimResult:
        values = np.array([[[0.5, 0.7]], [[0.1, np.nan]]])
        return ClaimResult(
            ["a", "b"],
            ["acc"],
            values,
            np.array([1.0, 2.0]),
            "x",
            "y",
            {"line": (np.array([0.6, 0.1]), np.array([0.14, np.nan]))},
            statistic=0.5,
            threshold=0.0,
            held=True,
            verdict="toy held",
        )

    result = run_claim("toy", ReproOptions(quick=True, runs=tmp_path), tmp_path)
    assert actual(tmp_path / "toy.h5") == documented("repro")
    assert registry_problems(tmp_path / "toy.h5") == []
    with h5py.File(tmp_path / "toy.h5") as f:
        assert np.allclose(f["table/mean"][()], [[0.6], [0.1]])
        assert np.isclose(f["table/spread"][0, 0], np.std([0.5, 0.7], ddof=1))
        assert np.isnan(f["table/spread"][1, 0])
    assert "0.600 ± 0.141" in result.table()
    assert plot_file(tmp_path / "toy.h5").stat().st_size > 0


def test_fit_matches_its_documented_layout(tmp_path):
    from finetune.config import DataConfig, ModelConfig
    from probes.fit import fit_measures
    from probes.options import ProbeOptions

    data = DataConfig(spec="synthetic:near", image_size=16, train_per_class=2)
    options = ProbeOptions(examples=30)
    fit_measures(ModelConfig(name="test_resnet"), data, k=3, options=options, out=tmp_path / "f.h5")
    assert actual(tmp_path / "f.h5") == documented("fit")
    assert registry_problems(tmp_path / "f.h5") == []


def test_sweep_matches_its_documented_layout(tmp_path):
    from landscape.tune.sweep import run_sweep
    from landscape.tune.sweep_options import SweepOptions

    space = tmp_path / "space.toml"
    space.write_text(
        '[base]\ndata = "synthetic:near"\nimage-size = 16\ntrain-per-class = 2\nepochs = 1\n'
        "batch-size = 8\n[space]\nlr = { low = 1e-3, high = 0.1, log = true }\n"
        "l2 = { low = 1e-5, high = 1e-2, log = true, zero = true, per-group = true }\n"
    )
    report = run_sweep(space, SweepOptions(trials=1, heartbeat=1), out=tmp_path / "sweep")
    assert actual(report.path) == documented("sweep")
    assert registry_problems(report.path) == []
    with h5py.File(report.path) as f:
        assert f.attrs["kind"] == "sweep"
        assert list(f["params/names"].asstr()) == ["lr", *(f"l2.{g}" for g in range(6))]
        assert f["summary"].attrs["best_value"] == report.trials[0].value


def test_explain_matches_its_documented_layout(tmp_path):
    from landscape.tune.explain import ExplainOptions, explain_runs

    engine.train(fast_config("pretrain", data="synthetic:source", epochs=1), tmp_path / "src")
    for seed in (0, 1):
        engine.train(fast_config(epochs=1, init=str(tmp_path / "src"), seed=seed),
                     tmp_path / f"run{seed}")  # fmt: skip
    options = ExplainOptions(examples=32, batch_size=8, bn_batches=1, points=3)
    out = tmp_path / "e.h5"
    explain_runs([tmp_path / "run0"], against=tmp_path / "run1", options=options, out=out)
    # The basin's optional names are there; the block shuffle's are not.
    assert actual(out) == {
        name: names - {n for n in names if n.startswith("shuffle")}
        for name, names in documented("explain").items()
    }
    assert registry_problems(out) == []
