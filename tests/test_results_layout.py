"""Every result kind written by the code matches its layout in results/README.md."""

import re
from pathlib import Path

import h5py
import pytest
from conftest import fast_config

from finetune import engine

README = Path(__file__).resolve().parents[1] / "results" / "README.md"
COMMON = {"kind", "schema_version", "created", "landscape_version", "command"}


def documented(kind: str) -> dict[str, set[str]]:
    """The attribute, dataset and summary names of one kind's section of the README."""
    text = README.read_text()
    section = text.split(f"## kind `{kind}`", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"\n(Root attributes|Datasets|Summary attributes)", section)
    tables = dict(zip(parts[1::2], parts[2::2]))
    return {
        name: set(re.findall(r"^\| `([^`]+)` \|", tables.get(name, ""), flags=re.M))
        for name in ("Root attributes", "Datasets", "Summary attributes")
    }


def actual(path: Path) -> dict[str, set[str]]:
    datasets: set[str] = set()
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: datasets.add(name) if isinstance(obj, h5py.Dataset)
                     else None)
        return {
            "Root attributes": set(f.attrs) - COMMON,
            "Datasets": datasets,
            "Summary attributes": set(f["summary"].attrs),
        }


def test_common_attributes_are_documented():
    assert all(f"`{name}`" in README.read_text() for name in COMMON)


def test_run_h5_matches_its_documented_layout(tmp_path):
    engine.train(fast_config(epochs=1), tmp_path / "run", command="test")
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        assert set(f.attrs) >= COMMON and f.attrs["kind"] == "run"
    assert actual(tmp_path / "run" / "run.h5") == documented("run")


@pytest.mark.slow
def test_bench_train_matches_its_documented_layout(tmp_path):
    from finetune.bench import bench_train

    result = bench_train(image_size=16, batch_size=16, steps=5, out=tmp_path / "b.h5")
    assert result.engine_images_per_s > 0 and result.plain_images_per_s > 0
    assert actual(tmp_path / "b.h5") == documented("bench_train")


@pytest.mark.slow
def test_bench_cka_matches_its_documented_layout_and_agrees_with_torch_cka(tmp_path):
    from probes.bench import bench_cka

    result = bench_cka(image_size=16, batch_size=8, examples=(16, 48), device="cpu",
                       out=tmp_path / "c.h5")
    assert [r.examples for r in result.rows] == [16, 48]
    assert all(r.forward_seconds > 0 and r.cka_seconds > 0 for r in result.rows)
    assert result.torch_cka is not None and result.torch_cka.max_abs_difference < 1e-3
    assert actual(tmp_path / "c.h5") == documented("bench_cka")
