"""Every result kind the code writes is declared once, in the ``kinds.py`` of its writer's
folder; the declarations name real writers, loading them imports no writer, and the files
the code writes (and the committed ones) hold what their kind declares. results/README.md's
kind sections are generated from the declarations (tests/test_tables.py)."""

import ast
import importlib
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import fast_config

from finetune import engine
from finetune.result_files import write_result
from finetune.result_kinds import (
    COMMON_ATTRIBUTES,
    KINDS,
    Attribute,
    Dataset,
    ResultKind,
    register_kind,
)
from landscape.plots.kinds import DECLARATIONS, PLOTS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "results" / "README.md"
COMMON = {"kind", "schema_version", "created", "landscape_version", "command"}


def documented(kind: str) -> dict[str, set[str]]:
    """Every name of a kind's section of results/README.md, by section: its declaration's
    names, from which the section is generated."""
    return KINDS[kind].names()


def documented_device() -> set[str]:
    """The keys of the device description that every benchmark file carries."""
    section = README.read_text().split("## Benchmark files", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.M))


def described_device(path: Path) -> dict:
    with h5py.File(path) as f:
        return json.loads(f.attrs["device"])


def actual(path: Path) -> dict[str, set[str]]:
    """The names the file at ``path`` holds, by section (common root attributes left out)."""
    datasets: set[str] = set()
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: datasets.add(name) if isinstance(obj, h5py.Dataset)
                     else None)  # fmt: skip
        return {
            "attributes": set(f.attrs) - COMMON,
            "datasets": datasets,
            "summary": set(f["summary"].attrs),
        }


def registry_problems(path: Path) -> list[str]:
    """What the file at ``path`` lacks of its kind's declared layout, and what it holds
    that the declaration does not list."""
    with h5py.File(path) as f:
        kind = KINDS[str(f.attrs["kind"])]
        return kind.missing(f) + kind.unlisted(f)


def family(path: Path) -> str:
    """The folder family of a source file: ``landscape/SUB`` inside ``landscape``, else
    its top-level package (``finetune``, ``probes``)."""
    parts = path.relative_to(ROOT).parts
    return "/".join(parts[:2] if parts[0] == "landscape" else parts[:1])


def written_kinds() -> dict[str, set[str]]:
    """The kind of every ``write_result`` call in the library's source (its second
    argument, which must be a string literal), with the families of the files calling it."""
    kinds: dict[str, set[str]] = {}
    for package in ("finetune", "probes", "landscape"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                func = getattr(node, "func", None)
                if getattr(func, "id", getattr(func, "attr", None)) != "write_result":
                    continue
                kind = node.args[1]
                assert isinstance(kind, ast.Constant), f"{path}:{node.lineno}: kind not literal"
                kinds.setdefault(kind.value, set()).add(family(path))
    return kinds


def declaring_families() -> dict[str, list[str]]:
    """The families of the declaration modules that construct each kind (the first
    argument of every ``ResultKind(...)`` in their source)."""
    kinds: dict[str, list[str]] = {}
    for module in DECLARATIONS:
        path = Path(module.__file__)
        for node in ast.walk(ast.parse(path.read_text())):
            if getattr(getattr(node, "func", None), "id", None) == "ResultKind":
                kinds.setdefault(node.args[0].value, []).append(family(path))
    return kinds


def test_common_attributes_are_documented():
    assert set(COMMON_ATTRIBUTES) == COMMON
    assert all(f"`{name}`" in README.read_text() for name in COMMON)


def test_every_kind_the_code_writes_is_declared_once_beside_its_writer():
    # The rule: a kind is declared in the kinds.py of the family whose code writes it
    # (landscape/SUB/kinds.py inside landscape, else finetune/kinds.py or probes/kinds.py).
    written = written_kinds()
    assert {"run", "barrier", "sharpness", "criticality", "repro", "bench_cka"} <= set(written)
    assert all(len(families) == 1 for families in written.values()), written
    assert declaring_families() == {kind: sorted(families) for kind, families in written.items()}
    assert set(KINDS) == set(written)
    assert all(name == kind.name for name, kind in KINDS.items())


def test_every_declared_writer_is_a_function_of_its_family_named_in_the_prose():
    for name, families in declaring_families().items():
        kind = KINDS[name]
        assert kind.writers, name
        for writer in kind.writers:
            module, _, function = writer.rpartition(".")
            assert inspect.isfunction(getattr(importlib.import_module(module), function)), writer
            assert writer.startswith(f"{families[0].replace('/', '.')}."), writer
            assert f"`{writer}`" in kind.intro, writer


def test_the_declarations_the_plots_and_the_command_import_no_writer():
    # What `landscape plot` pays for: the declarations are light, the plots need only them,
    # and the command line imports a writer only when a command runs.
    names = [module.__name__ for module in DECLARATIONS]
    script = (
        f"import importlib, json, sys\nfor n in {names!r}: importlib.import_module(n)\n"
        "declared = sorted(sys.modules)\nimport landscape.plots\nplotted = sorted(sys.modules)\n"
        "import cli.main\nprint(json.dumps([declared, plotted, sorted(sys.modules)]))"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=ROOT)  # fmt: skip
    declared, plotted, command = map(set, json.loads(run.stdout))
    writers = {w.rpartition(".")[0] for kind in KINDS.values() for w in kind.writers}
    assert {"finetune.engine", "landscape.experiments.repro", "probes.fit"} <= writers
    assert not declared & (writers | {"torch", "matplotlib", "landscape.plots"})
    assert not plotted & writers
    assert not command & writers


def test_the_readme_lists_the_kinds_with_a_plot():
    listed = re.search(r"Kinds with a plot: ([^.]+)\.", README.read_text())
    assert listed is not None
    assert set(re.findall(r"`(\w+)`", listed.group(1))) == set(PLOTS)
    assert set(PLOTS) <= set(KINDS)


TOY = ResultKind(
    "toy",
    writers=("toys.write_toy",),
    intro="Written by `toys.write_toy`.\nA = arms.",
    attributes=(Attribute("seed", "the seed"),),
    datasets=(
        Dataset("arms/length", "(A,)", "float64", "each arm's length"),
        Dataset("arms/colour", "(A,)", "string", "", optional=True),
    ),
    summary=(Attribute("arms", "A", optional=True),),
    summary_note="once counted",
)


def test_a_kind_renders_its_readme_section():
    assert TOY.readme_section() == (
        "## kind `toy`\n\nWritten by `toys.write_toy`.\nA = arms.\n\n"
        "Root attributes:\n\n| attribute | meaning |\n| --- | --- |\n| `seed` | the seed |\n\n"
        "Datasets:\n\n| dataset | shape | dtype | meaning |\n| --- | --- | --- | --- |\n"
        "| `arms/length` | (A,) | float64 | each arm's length |\n"
        "| `arms/colour` | (A,) | string | |\n\n"
        "Summary attributes (once counted):\n\n| attribute | meaning |\n| --- | --- |\n"
        "| `arms` | A |\n"
    )
    bare = ResultKind("bare", (), "Prose.", (Attribute("seed", "the seed"),))
    assert "\n\nDatasets: none.\n\nSummary attributes:\n\n" in bare.readme_section()


def test_a_file_is_checked_against_its_kinds_required_and_optional_names(tmp_path):
    write_result(tmp_path / "t.h5", "toy", {"arms/colour": ["red"], "legs": [1.0]},
                 attrs={"seed": 0}, summary={"arms": 1})  # fmt: skip
    with h5py.File(tmp_path / "t.h5") as f:
        assert TOY.missing(f) == ["dataset 'arms/length'"]
        assert TOY.unlisted(f) == ["dataset 'legs'"]


def test_a_kind_declared_twice_is_refused():
    with pytest.raises(ValueError, match="'run' is declared twice"):
        register_kind(KINDS["run"])


def committed_results(root: Path = ROOT) -> list[Path]:
    """The result files git tracks under ``root``/results: never what a user's own runs
    (the demo's files, a claim's run directories, all git-ignored) left there."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--", "results/*.h5"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
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


def test_committed_results_hold_their_declared_layout():
    files = committed_results()
    assert len(files) >= 6
    for path in files:
        with h5py.File(path) as f:
            kind = str(f.attrs["kind"])
        # The declaration says which names are optional (explain's basin/* with --against).
        assert kind in KINDS, path
        assert registry_problems(path) == [], path


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
    from landscape.experiments.options import ReproOptions
    from landscape.experiments.repro import ClaimResult, register_claim, run_claim
    from landscape.plots import plot_file

    # The real claims register first, so restoring the registry afterwards keeps them.
    landscape.experiments.repro.claims()
    repro = landscape.experiments.repro
    monkeypatch.setattr(repro, "CLAIMS", dict(repro.CLAIMS))

    @register_claim("toy", "a toy claim", "a toy finding")
    def toy(options: ReproOptions) -> ClaimResult:
        values = np.array([[[0.5, 0.7]], [[0.1, np.nan]]])
        return ClaimResult(["a", "b"], ["acc"], values, np.array([1.0, 2.0]), "x", "y",
                           {"line": (np.array([0.6, 0.1]), np.array([0.14, np.nan]))},
                           statistic=0.5, threshold=0.0, held=True, verdict="toy held")  # fmt: skip

    result = run_claim("toy", ReproOptions(quick=True, runs=tmp_path), tmp_path)
    # It trains no run, so it has no runs' records (test_claim_runs.py: a claim that does).
    assert actual(tmp_path / "toy.h5") == KINDS["repro"].required()
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
    from landscape.tune.explain import explain_runs
    from landscape.tune.options import ExplainOptions

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
