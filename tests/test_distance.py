"""Parameter distances against hand computations and the engine's own log."""

import h5py
import numpy as np
import pytest
import torch

from finetune.errors import IncompatibleWeightsError
from finetune.groups import LayerGroup
from probes.distance import distance_between_runs, parameter_distance


def test_distances_by_hand():
    a = {"w": torch.tensor([3.0, 4.0]), "v": torch.tensor([[1.0, 0.0]]), "b": torch.tensor([2.0])}
    b = {"w": torch.tensor([0.0, 4.0]), "v": torch.tensor([[0.0, 1.0]]), "b": torch.tensor([2.0])}
    groups = [LayerGroup(0, "low", ("w",)), LayerGroup(1, "high", ("v", "b"))]
    d = parameter_distance(a, b, groups)
    assert d.tensor_names == ["w", "v", "b"]
    assert np.allclose(d.tensor["distance"], [3.0, 2**0.5, 0.0])
    assert np.allclose(d.tensor["relative_distance"], [3 / 4, 2**0.5, 0.0])
    assert np.allclose(d.tensor["cosine"], [16 / 20, 0.0, 1.0])
    # high: a = (1, 0, 2), b = (0, 1, 2): |a-b| = sqrt 2, |b| = sqrt 5, cos = 4/5.
    assert np.allclose(d.group["distance"], [3.0, 2**0.5])
    assert np.allclose(d.group["relative_distance"], [0.75, (2 / 5) ** 0.5])
    assert np.allclose(d.group["cosine"], [0.8, 0.8])
    assert d.total["distance"] == pytest.approx(11**0.5)
    assert d.total["cosine"] == pytest.approx(20 / (30**0.5 * 21**0.5))


def test_different_architectures_are_refused_naming_the_tensor():
    a = {"w": torch.zeros(2, 3)}
    groups = [LayerGroup(0, "g", ("w",))]
    with pytest.raises(IncompatibleWeightsError, match=r"differ at 'w': shape \(2, 3\)"):
        parameter_distance(a, {"w": torch.zeros(3, 3)}, groups)
    with pytest.raises(IncompatibleWeightsError, match="no tensor 'w'"):
        parameter_distance(a, {}, groups)


def test_distance_to_init_equals_the_engines_last_logged_distance(demo_dir):
    run = demo_dir / "pretrained-seed0"
    d = distance_between_runs(run)
    with h5py.File(run / "run.h5") as f:
        logged = f["groups/distance_to_init"][-1]
        names = [n.decode() for n in f["groups/names"][()]]
    assert d.group_names == names
    assert np.allclose(d.group["distance"], logged, rtol=1e-6)
