"""CKA against the authors' published values, its defining invariances, the unbiasedness
of the debiased estimator, and the minibatch accumulator against the full computation."""

import gc
import weakref

import numpy as np
import pytest
import torch

from probes.cka import MinibatchCKA, hsic, linear_cka, rbf_cka, rbf_gram


@pytest.fixture
def oracle_xy():
    """The inputs of the reference notebook of Kornblith et al. 2019."""
    np.random.seed(1337)
    x = np.random.randn(100, 10)
    y = np.random.randn(100, 10) + x
    return x, y


def test_published_values_of_the_reference_notebook(oracle_xy):
    x, y = oracle_xy
    assert linear_cka(x, y) == pytest.approx(0.55761, abs=5e-6)
    assert rbf_cka(x, y, threshold=0.5) == pytest.approx(0.65483, abs=5e-6)
    assert linear_cka(x, y, debiased=True) == pytest.approx(0.51346, abs=5e-6)


def test_torch_and_numpy_inputs_agree(oracle_xy):
    x, y = oracle_xy
    as_torch = linear_cka(torch.from_numpy(x).float(), torch.from_numpy(y).float())
    assert as_torch == pytest.approx(linear_cka(x, y), abs=1e-6)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_of_a_representation_with_itself_is_one(oracle_xy, debiased):
    x, _ = oracle_xy
    assert linear_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(x, x, 0.8, debiased=debiased) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("debiased", [False, True])
def test_linear_cka_is_invariant_to_rotation_and_isotropic_scaling(oracle_xy, debiased):
    x, y = oracle_xy
    rng = np.random.default_rng(0)
    q_x, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    q_y, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    base = linear_cka(x, y, debiased=debiased)
    assert linear_cka(3.7 * x @ q_x, y, debiased=debiased) == pytest.approx(base, abs=1e-10)
    assert linear_cka(x, 0.2 * y @ q_y, debiased=debiased) == pytest.approx(base, abs=1e-10)


def test_linear_cka_is_not_invariant_to_arbitrary_linear_maps(oracle_xy):
    x, y = oracle_xy
    stretch = np.diag([10.0] + [0.1] * 9)
    assert abs(linear_cka(x @ stretch, y) - linear_cka(x, y)) > 0.05


def test_rbf_bandwidth_is_the_median_squared_distance_with_the_diagonal():
    # Points 0, 1 and 3 on a line: squared distances 0,0,0,1,1,4,4,9,9 have median 1.
    x = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    d2 = torch.tensor([[0, 1, 9], [1, 0, 4], [9, 4, 0]], dtype=torch.float64)
    assert torch.allclose(rbf_gram(x, threshold=1.0), torch.exp(-d2 / 2))
    assert torch.allclose(rbf_gram(x, threshold=2.0), torch.exp(-d2 / 8))


def test_debiased_hsic_is_unbiased_and_the_biased_one_is_not():
    """For linear kernels the population HSIC is ||Cov(x, y)||_F^2; with x ~ N(0, I) and
    y = x A + noise that is ||A||_F^2. Averaged over many samples of only 6 examples, the
    unbiased estimator lands on it; the biased one overshoots by far more than its error."""
    generator = torch.Generator().manual_seed(0)
    a = torch.tensor([[1.0, 0.5], [0.0, -1.0], [0.3, 0.2]], dtype=torch.float64)
    draws, n = 40000, 6
    x = torch.randn(draws, n, 3, generator=generator, dtype=torch.float64)
    y = x @ a + torch.randn(draws, n, 2, generator=generator, dtype=torch.float64)
    k, l = x @ x.transpose(1, 2), y @ y.transpose(1, 2)  # noqa: E741
    truth = float((a**2).sum())
    unbiased, biased = hsic(k, l, debiased=True), hsic(k, l, debiased=False)
    standard_error = float(unbiased.std()) / draws**0.5
    assert abs(float(unbiased.mean()) - truth) < 4 * standard_error
    assert float(biased.mean()) - truth > 10 * standard_error


def test_minibatch_cka_over_one_batch_equals_the_debiased_full_computation(oracle_xy):
    x, y = oracle_xy
    z = np.tanh(x @ np.random.default_rng(1).normal(size=(10, 7)))
    accumulator = MinibatchCKA(2, 3)
    accumulator.update([x, z], [y, x, z])
    matrix = accumulator.compute()
    for i, a in enumerate([x, z]):
        for j, b in enumerate([y, x, z]):
            assert matrix[i, j] == pytest.approx(linear_cka(a, b, debiased=True), abs=1e-12)


def test_minibatch_cka_accumulates_hsic_over_batches_then_divides(oracle_xy):
    x, y = oracle_xy
    accumulator = MinibatchCKA(1, 1)
    parts = [slice(0, 40), slice(40, 100)]
    for part in parts:
        accumulator.update([x[part]], [y[part]])
    kx = [torch.from_numpy(x[p] @ x[p].T) for p in parts]
    ky = [torch.from_numpy(y[p] @ y[p].T) for p in parts]
    cross = sum(float(hsic(a, b, True)) for a, b in zip(kx, ky))
    self_x = sum(float(hsic(a, a, True)) for a in kx)
    self_y = sum(float(hsic(b, b, True)) for b in ky)
    assert accumulator.compute()[0, 0] == pytest.approx(cross / (self_x * self_y) ** 0.5)


def test_minibatch_cka_keeps_no_features_and_a_fixed_state():
    accumulator = MinibatchCKA(2, 2)
    sizes = [t.numel() for t in (accumulator.cross, accumulator.self_a, accumulator.self_b)]
    batch = [torch.randn(8, 5), torch.randn(8, 3, 2, 2)]
    alive = [weakref.ref(t) for t in batch]
    for _ in range(20):
        accumulator.update(batch, batch)
    del batch
    gc.collect()
    assert all(ref() is None for ref in alive)
    assert sizes == [t.numel() for t in (accumulator.cross, accumulator.self_a,
                                         accumulator.self_b)]
    assert np.allclose(np.diagonal(accumulator.compute()), 1.0)


def test_minibatch_cka_refuses_batches_smaller_than_four():
    with pytest.raises(ValueError, match="at least 4"):
        MinibatchCKA(1, 1).update([torch.randn(3, 2)], [torch.randn(3, 2)])


def test_minibatch_cka_refuses_compute_before_any_batch():
    with pytest.raises(ValueError, match="before any update"):
        MinibatchCKA(1, 1).compute()


def _ddp_worker(rank: int, world: int, init_file: str, x, y, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    accumulator = MinibatchCKA(2, 1)
    for start in range(rank * 10, 40, world * 10):
        part = slice(start, start + 10)
        accumulator.update([x[part], x[part] ** 2], [y[part]])
    accumulator.all_reduce()
    if rank == 0:
        np.save(out, accumulator.compute())
    dist.destroy_process_group()


def test_all_reduce_over_two_processes_equals_one_process(tmp_path):
    x, y = torch.randn(40, 6, dtype=torch.float64), torch.randn(40, 4, dtype=torch.float64)
    single = MinibatchCKA(2, 1)
    for start in range(0, 40, 10):
        part = slice(start, start + 10)
        single.update([x[part], x[part] ** 2], [y[part]])
    out = tmp_path / "matrix.npy"
    torch.multiprocessing.spawn(
        _ddp_worker, args=(2, str(tmp_path / "init"), x, y, str(out)), nprocs=2
    )
    assert np.allclose(np.load(out), single.compute(), atol=1e-12)
