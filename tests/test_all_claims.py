"""Several claims in one command (``landscape repro all``, ``landscape repro A,B``): the
names it takes, the claims started longest first by the seconds their files record, options
a claim cannot take refused before any trains, their dry run as the union of each claim's,
their verdicts rejudged from committed files, the full-size timing's one way and its words
in the README, and (extended) the claims side by side on two workers writing the tables one
thread writes."""

from __future__ import annotations

import re
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from finetune.config import build_config
from finetune.errors import ConfigError
from finetune.executors import thread_count
from finetune.runs import ensure_run
from landscape.experiments import repro
from landscape.experiments.options import ReproOptions
from landscape.experiments.repro import Claim, ClaimResult, read_claim, run_claim
from landscape.experiments.repro.all_claims import claim_names, run_claims

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "repro"


def test_claim_names_are_every_claim_or_those_given_once_each():
    assert claim_names("all") == list(repro.claims())
    assert claim_names("transfer, depth,transfer") == ["transfer", "depth"]
    with pytest.raises(ConfigError, match="unknown claim 'dpeth'; known: better_source"):
        claim_names("depth,dpeth")


def _timed_claim(pause: float, calls: list[str], name: str):
    def run(options: ReproOptions) -> ClaimResult:
        if options.plan is None:  # not the dry run every claim gets first
            calls.append(name)
            time.sleep(pause)
        values = np.full((1, 1, 1), pause)
        series = {name: (np.zeros(1), np.zeros(1))}
        return ClaimResult(rows=[name], columns=["s"], values=values, x=np.zeros(1),
                           xlabel="x", ylabel="y", series=series, statistic=pause,
                           threshold=0.0, held=pause > 0, verdict=name)  # fmt: skip

    return run


def test_claims_start_longest_first_by_their_files_and_come_back_in_the_order_given(
    monkeypatch, tmp_path
):
    calls: list[str] = []
    for name, pause in (("quick_one", 0.0), ("slow_one", 0.3)):
        claim = Claim(name, name, "a paper", _timed_claim(pause, calls, name))
        monkeypatch.setitem(repro.CLAIMS, name, claim)
    options = ReproOptions(runs=tmp_path / "runs")
    names = ["quick_one", "slow_one"]
    first = run_claims(names, options, tmp_path)
    assert calls == names  # no file yet: in the order given
    assert list(first) == names and [r.verdict for r in first.values()] == names
    assert read_claim(tmp_path / "slow_one.h5")[2] >= 0.3 > read_claim(tmp_path / "quick_one.h5")[2]
    calls.clear()
    again = run_claims(names, options, tmp_path)
    assert calls == ["slow_one", "quick_one"]  # the longer by its file first
    assert list(again) == names


def test_options_one_claim_cannot_take_fail_before_any_claim_trains(tmp_path):
    options = ReproOptions(runs=tmp_path / "runs", quick=True, data="synthetic:near")
    with pytest.raises(ConfigError, match="^depth: this claim takes 2 target dataset"):
        run_claims(["l2sp", "depth"], options, tmp_path / "out")  # l2sp takes one target
    assert not any(tmp_path.iterdir())  # nothing trained or written


def _run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from cli.main import main

    monkeypatch.setattr(sys, "argv", ["landscape", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code or 0, capsys.readouterr().out


def test_the_dry_run_of_two_claims_lists_each_and_their_union(monkeypatch, capsys, tmp_path):
    code, out = _run_cli(monkeypatch, capsys, "repro", "depth,transfer", "--quick",
                         "--dry-run", "--out", str(tmp_path))  # fmt: skip
    assert code == 0
    counts = dict(re.findall(r"^(\w+): (\d+) runs", out, flags=re.MULTILINE))
    sources = re.findall(r"pretrain .* (\S+/source)$", out, flags=re.MULTILINE)
    assert set(counts) == {"depth", "transfer"} and len(sources) == 2 == len(set(sources)) + 1
    union = int(counts["depth"]) + int(counts["transfer"]) - 1  # they share only the source
    assert f"2 claims: {union} distinct runs, 0 complete" in out
    assert not any(tmp_path.iterdir())  # nothing written


def test_several_claims_rejudged_from_their_files(monkeypatch, capsys, tmp_path):
    for name in ("depth", "yosinski"):
        shutil.copy(COMMITTED / f"{name}.h5", tmp_path)
    code, out = _run_cli(monkeypatch, capsys, "repro", "depth,yosinski", "--rejudge",
                         "--out", str(tmp_path))  # fmt: skip
    committed, _, _ = read_claim(COMMITTED / "depth.h5")
    assert code == 0
    assert f"depth: HELD: {committed.verdict}" in out  # the committed verdict, from its table
    assert "yosinski: its verdict reads its runs, not only its table: not rejudged" in out


def tiny_source(folder: Path) -> Path:
    """test_resnet pre-trained for one epoch on 10 images per class (about a second)."""
    values = {"model": "test_resnet", "data": "synthetic:source", "train_per_class": 10,
              "epochs": 1, "seed": 0}  # fmt: skip
    return ensure_run(build_config("pretrain", {}, values), folder / "source")


def claims_on_one_thread(names: list[str], options: ReproOptions, out: Path) -> dict:
    """The claims ``names`` one after the other here with one thread: the reference."""
    with thread_count(1):
        return {name: run_claim(name, options, out) for name in names}


def same_claims(results: dict, reference: dict, out: Path, reference_out: Path) -> None:
    """The claims' tables and verdicts are the reference's, and so are the runs their files
    record, to the bit (the digests of their final weights)."""
    for name, result in results.items():
        np.testing.assert_array_equal(result.values, reference[name].values)
        assert result.verdict == reference[name].verdict
        assert read_claim(out / f"{name}.h5")[0].verdict == reference[name].verdict
        assert recorded_runs(out / f"{name}.h5") == recorded_runs(reference_out / f"{name}.h5")


def recorded_runs(path: Path) -> dict[str, str]:
    """The digest of each run's final weights, by run name, as a claim file records them."""
    with h5py.File(path) as f:
        names, digests = (f[f"runs/{key}"].asstr()[()] for key in ("name", "final_sha256"))
        assert len(names) > 0
        return dict(zip(names, digests))


@pytest.mark.extended
def test_claims_side_by_side_on_two_workers_write_one_threads_tables(tmp_path):
    names = ["depth", "transfer"]
    options = ReproOptions(runs=tmp_path / "runs", quick=True, source=tiny_source(tmp_path))
    serial = claims_on_one_thread(names, replace(options, runs=tmp_path / "serial"), tmp_path)
    out = tmp_path / "workers"
    same_claims(run_claims(names, replace(options, workers=2), out), serial, out, tmp_path)


def test_the_full_size_is_timed_only_the_fastest_way_and_read_into_the_readme_line(tmp_path):
    from finetune.result_files import write_result
    from landscape.experiments.studies.all_claims_speed import full_size_measured, ways

    every = ways(ReproOptions(runs=tmp_path, quick=True))
    full = ways(ReproOptions(runs=tmp_path, quick=False))
    assert len(every) == 5 and len(full) == 1
    ((label, (options, threads, side_by_side)),) = full.items()
    assert label.startswith("claims side by side, --workers") and side_by_side
    assert options.workers == every[label][0].workers > 1 and threads is None
    path = tmp_path / "all_claims_speed_full.h5"
    assert full_size_measured(path) == "the full size side by side is not yet timed"
    write_result(path, "all_claims_speed",
                 {"ways": [label], "claims": ["depth"], "seconds": np.array([9000.0]),
                  "claim_seconds": np.array([[8000.0]]), "same_tables": np.array([False])},
                 attrs={"pair": "synthetic", "model": "test_resnet", "quick": False, "cores": 2},
                 summary={"runs": 324})  # fmt: skip
    # As the claim file from scratch the committed depth file with its verdict turned over.
    (tmp_path / "from_scratch").mkdir()
    shutil.copy(COMMITTED / "depth.h5", tmp_path / "from_scratch")
    with h5py.File(tmp_path / "from_scratch" / "depth.h5", "r+") as f:
        f["summary"].attrs["held"] = not f["summary"].attrs["held"]
    held = read_claim(COMMITTED / "depth.h5")[0].held
    assert full_size_measured(path) == (
        f"from scratch (324 runs, 2 cores) they take 2.5 hours {label}, with tables other "
        "than those files (the runs from scratch differ from those the files were made from; "
        f"the claim files it wrote are in `{tmp_path / 'from_scratch'}`): each claim's verdict "
        "is the same but "
        f"depth's ({'did not hold' if held else 'held'} from scratch)"
    )
