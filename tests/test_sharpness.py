"""The sharpness probe against the Hessian formed whole: ``torch.autograd.functional.hessian``
of the same loss flattened over the parameters (a tiny conv net with BatchNorm in eval mode;
the head block of a test_resnet run), a quadratic whose Hessian is known in closed form, and
PyHessian when it is installed. Then the run-level probe, its file, command and benchmark."""

import copy
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import fast_config
from test_cli import run_cli
from test_results_layout import actual, documented, registry_problems
from torch import nn
from torch.func import functional_call

from finetune import engine
from finetune.groups import layer_groups
from finetune.runs import load_run
from landscape.geometry.hessian import (
    Hessian,
    MeanLoss,
    hutchinson,
    mean_and_error,
    top_eigenvalues,
)
from landscape.geometry.options import SHARPNESS_PROBE, SharpnessOptions
from landscape.geometry.sharpness import measure_sharpness, sharpness
from landscape.plots import plot_file
from probes.inputs import eval_prep, probe_data
from probes.options import ProbeOptions

ON_CPU = replace(SHARPNESS_PROBE, device="cpu")


def batched(batch_size: int) -> ProbeOptions:
    """The sharpness probe on the CPU in batches of ``batch_size``."""
    return replace(ON_CPU, batch_size=batch_size)


TIGHT = dict(iterations=500, tol=1e-13)


class TinyNet:
    """A conv net of 48 parameters with BatchNorm in eval mode, fitted for 300 steps so
    that its Hessian is that of a near-minimum (a clear top eigenvalue), the 48 examples in
    batches of 20, 20 and 8, and its Hessian formed whole."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = nn.Sequential(
            nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Tanh(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(3, 3),
        ).double()  # fmt: skip
        with torch.no_grad():
            self.model[1].running_mean.uniform_(-0.2, 0.2)
            self.model[1].running_var.uniform_(0.5, 1.5)
        self.model.eval()
        self.y = torch.randint(0, 3, (48,))
        ramp = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64)
        self.x = (
            torch.randn(48, 1, 6, 6, dtype=torch.float64) + 0.5 * self.y.view(-1, 1, 1, 1) * ramp
        )
        optimizer = torch.optim.SGD(self.model.parameters(), lr=0.5)
        for _ in range(300):
            optimizer.zero_grad()
            F.cross_entropy(self.model(self.x), self.y).backward()
            optimizer.step()
        self.names = [n for n, _ in self.model.named_parameters()]
        self.params = list(self.model.parameters())
        # Blocks of parameter indices: the conv and its BatchNorm; the linear head.
        self.blocks = [range(0, 4), range(4, 6)]
        self.hessian_matrix = torch.autograd.functional.hessian(self.flat_loss, self.theta())

    def theta(self) -> torch.Tensor:
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def flat_loss(self, theta: torch.Tensor) -> torch.Tensor:
        pieces = theta.split([p.numel() for p in self.params])
        state = {n: t.view(p.shape) for n, t, p in zip(self.names, pieces, self.params)}
        state.update(self.model.named_buffers())
        return F.cross_entropy(functional_call(self.model, state, (self.x,)), self.y)

    def terms(self):
        for start, stop in ((0, 20), (20, 40), (40, 48)):
            logits = self.model(self.x[start:stop])
            yield F.cross_entropy(logits, self.y[start:stop], reduction="sum")

    def hessian(self) -> Hessian:
        return Hessian(MeanLoss(self.terms, 48), self.params)

    def span(self, block) -> slice:
        """A block's rows and columns of the whole Hessian."""
        sizes = [p.numel() for p in self.params]
        return slice(sum(sizes[: block[0]]), sum(sizes[: block[-1] + 1]))

    def block(self, block) -> torch.Tensor:
        rows = self.span(block)
        return self.hessian_matrix[rows, rows]


@pytest.fixture(scope="module")
def tiny() -> TinyNet:
    return TinyNet()


def largest_magnitude(matrix: torch.Tensor) -> float:
    values = torch.linalg.eigvalsh(matrix)
    return float(values[values.abs().argmax()])


def test_products_are_the_exact_hessian_times_the_vector_whole_and_by_block(tiny):
    hessian, whole = tiny.hessian(), range(len(tiny.params))
    v = torch.randn(48, dtype=torch.float64)
    parts = [v[tiny.span(b)] for b in tiny.blocks]
    products = hessian.products([whole, *tiny.blocks], [v, *parts])
    torch.testing.assert_close(products[0], tiny.hessian_matrix @ v, rtol=1e-10, atol=1e-12)
    for block, part, product in zip(tiny.blocks, parts, products[1:]):
        torch.testing.assert_close(product, tiny.block(block) @ part, rtol=1e-10, atol=1e-12)
    assert hessian.products_done == 3 and hessian.passes == 1
    assert hessian.value == pytest.approx(float(tiny.flat_loss(tiny.theta())), rel=1e-12)


def test_power_iteration_finds_the_top_eigenvalue_of_the_whole_hessian_and_each_block(tiny):
    hessian, whole = tiny.hessian(), range(len(tiny.params))
    generator = torch.Generator().manual_seed(0)
    found = top_eigenvalues(hessian, [whole, *tiny.blocks], generator=generator, **TIGHT)
    truths = [tiny.hessian_matrix, *(tiny.block(b) for b in tiny.blocks)]
    for eigen, truth in zip(found, truths):
        assert eigen.converged and eigen.iterations < TIGHT["iterations"]
        assert eigen.value == pytest.approx(largest_magnitude(truth), rel=1e-9)
    # The blocks iterate in lockstep: one pass per iteration of the slowest.
    assert hessian.passes == max(e.iterations for e in found)
    assert hessian.products_done == sum(e.iterations for e in found)


def test_hutchinson_converges_to_the_exact_traces_within_its_reported_error(tiny):
    hessian, whole = tiny.hessian(), range(len(tiny.params))
    sizes = [tiny.span(b).stop - tiny.span(b).start for b in tiny.blocks]
    generator = torch.Generator().manual_seed(0)
    samples = hutchinson(
        hessian, whole, samples=500, segments=sizes, generator=generator, vectors_per_pass=100
    )
    assert samples.shape == (500, 2) and hessian.passes == 5
    trace, error = mean_and_error(samples.sum(axis=1))
    truth = float(tiny.hessian_matrix.trace())
    assert abs(trace - truth) < 3 * error
    # Rademacher vectors: Var(v.Hv) = 2 * sum over i != j of H_ij^2.
    h = tiny.hessian_matrix
    off_diagonal = float((h**2).sum() - (h.diagonal() ** 2).sum())
    assert error == pytest.approx((2 * off_diagonal / 500) ** 0.5, rel=0.1)
    traces, errors = mean_and_error(samples)
    for block, value, block_error in zip(tiny.blocks, traces, errors):
        assert abs(value - float(tiny.block(block).trace())) < 3 * block_error


class TinyAttention(nn.Module):
    """One attention layer through ``F.scaled_dot_product_attention``, whose fused CPU and
    GPU kernels have no second derivative, and the same layer written out by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(4, 12)
        self.out = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor, *, by_hand: bool = False) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if by_hand:
            mixed = torch.softmax(q @ k.transpose(-2, -1) / 2.0, dim=-1) @ v
        else:
            mixed = F.scaled_dot_product_attention(q, k, v)
        return self.out(mixed.mean(dim=1))


def test_products_through_fused_attention_are_the_exact_hessian_times_the_vector():
    model = TinyAttention().double()
    x, y = torch.randn(6, 5, 4, dtype=torch.float64), torch.randint(0, 2, (6,))
    names = [n for n, _ in model.named_parameters()]
    params = list(model.parameters())

    def flat_loss(theta):
        pieces = theta.split([p.numel() for p in params])
        state = {n: t.view(p.shape) for n, t, p in zip(names, pieces, params)}
        logits = functional_call(model, state, (x,), {"by_hand": True})
        return F.cross_entropy(logits, y)

    theta = torch.cat([p.detach().reshape(-1) for p in params])
    truth = torch.autograd.functional.hessian(flat_loss, theta)
    terms = lambda: [F.cross_entropy(model(x), y, reduction="sum")]  # noqa: E731
    v = torch.randn(len(theta), dtype=torch.float64)
    (product,) = Hessian(MeanLoss(terms, 6), params).products([range(len(params))], [v])
    torch.testing.assert_close(product, truth @ v, rtol=1e-10, atol=1e-12)


def test_a_quadratic_with_a_known_spectrum():
    # L = 1/2 t^T A t + b^T t with A = Q diag(eigenvalues) Q^T: the Hessian is A.
    eigenvalues = torch.tensor([-1.5, 0.25, 1.0, 2.0, 4.0], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))
    a = q @ torch.diag(eigenvalues) @ q.T
    b = torch.randn(5, dtype=torch.float64)
    first = nn.Parameter(torch.randn(3, dtype=torch.float64))
    second = nn.Parameter(torch.randn(2, dtype=torch.float64))

    def loss(matrix):
        def terms():
            t = torch.cat([first, second])
            yield 2 * (0.5 * t @ matrix @ t + b @ t)  # two examples' worth

        return Hessian(MeanLoss(terms, 2), [first, second])

    generator = torch.Generator().manual_seed(0)
    whole, head = top_eigenvalues(loss(a), [range(2), range(1)], generator=generator, **TIGHT)
    assert whole.value == pytest.approx(4.0, rel=1e-9)
    assert head.value == pytest.approx(largest_magnitude(a[:3, :3]), rel=1e-9)
    samples = hutchinson(loss(a), range(2), samples=400, segments=[3, 2], generator=generator)
    trace, error = mean_and_error(samples.sum(axis=1))
    assert abs(trace - 5.75) < 3 * error
    # A diagonal Hessian: every Rademacher sample is the trace itself.
    diagonal = hutchinson(
        loss(torch.diag(eigenvalues)), range(2), samples=5, segments=[3, 2], generator=generator
    )
    np.testing.assert_allclose(diagonal, [[-0.25, 6.0]] * 5, rtol=1e-12)
    assert mean_and_error(diagonal.sum(axis=1))[1] == 0.0


# PyHessian builds its graph with backward(create_graph=True), which torch warns about.
@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_pyhessian_agrees(tiny):
    pyhessian = pytest.importorskip("pyhessian")
    model = copy.deepcopy(tiny.model).float()
    x, y = tiny.x.float(), tiny.y
    torch.manual_seed(0)
    theirs = pyhessian.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False)
    (their_eigenvalue,), _ = theirs.eigenvalues(maxIter=500, tol=1e-7)
    their_trace = np.array(theirs.trace(maxIter=300, tol=0.0))
    model.zero_grad(set_to_none=True)  # PyHessian leaves gradients holding their graph
    ours = Hessian(MeanLoss(lambda: [F.cross_entropy(model(x), y, reduction="sum")], 48),
                   list(model.parameters()))  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    (eigen,) = top_eigenvalues(ours, [range(6)], iterations=500, tol=1e-7, generator=generator)
    assert eigen.value == pytest.approx(their_eigenvalue, rel=1e-4)
    samples = hutchinson(ours, range(6), samples=300, segments=[48], generator=generator,
                         vectors_per_pass=100)  # fmt: skip
    (trace,), (error,) = mean_and_error(samples)
    their_error = their_trace.std(ddof=1) / len(their_trace) ** 0.5
    assert abs(trace - their_trace.mean()) < 3 * (error**2 + their_error**2) ** 0.5


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A test_resnet run (16 px, 40 training images) fine-tuned for two epochs."""
    out = tmp_path_factory.mktemp("sharpness") / "run"
    engine.train(fast_config(), out, command="test")
    return out


def test_the_head_block_of_a_run_matches_its_exact_hessian(run):
    # The head's Hessian formed whole from the run's features (the rest fixed, BatchNorm
    # in eval mode), against the probe restricted to the head on the same batches.
    options = SharpnessOptions(
        iterations=200, tol=1e-6, hutchinson_samples=200, vectors_per_pass=100, probe=ON_CPU
    )
    runtime = options.runtime()
    loaded = load_run(run)
    model = loaded.model
    wanted = ProbeOptions(split="train", examples=32, seed=0)
    data = probe_data(loaded, runtime, wanted).fixed(16, runtime.processes)
    prep = eval_prep(loaded, runtime)
    head = layer_groups(model)[-1]
    assert head.params == ("fc.weight", "fc.bias")
    result = measure_sharpness(model, data, prep, runtime, options, groups=[head])
    with torch.no_grad():
        batches = [(model.forward_head(model.forward_features(prep(x)), pre_logits=True), y)
                   for x, y in data]  # fmt: skip
    features = torch.cat([f for f, _ in batches]).double()
    labels = torch.cat([y for _, y in batches])

    def head_loss(theta):
        weight, bias = theta[:960].view(10, 96), theta[960:]
        return F.cross_entropy(features @ weight.T + bias, labels)

    theta = torch.cat([model.fc.weight.detach().reshape(-1), model.fc.bias.detach()]).double()
    truth = torch.autograd.functional.hessian(head_loss, theta)
    assert result.loss == pytest.approx(float(head_loss(theta)), rel=1e-5)
    assert result.eigen[0].converged
    assert result.top_eigenvalue == pytest.approx(largest_magnitude(truth), rel=1e-4)
    trace, error = result.trace
    assert abs(trace - float(truth.trace())) < 3 * error
    assert result.hvps == sum(e.iterations for e in result.eigen) + 200


QUICK = dict(iterations=4, tol=0.0, hutchinson_samples=4, vectors_per_pass=4)


def test_a_runs_sharpness_does_not_depend_on_how_its_examples_are_batched(run, tmp_path):
    out = tmp_path / "s.h5"
    two = sharpness(run, options=SharpnessOptions(batches=2, probe=batched(16), **QUICK), out=out)
    one = sharpness(run, options=SharpnessOptions(batches=1, probe=batched(32), **QUICK))
    assert (two.examples, two.batches, one.examples, one.batches) == (32, 2, 32, 1)
    assert two.groups == [g.name for g in layer_groups(load_run(run).model)]
    np.testing.assert_allclose([e.value for e in two.eigen], [e.value for e in one.eigen],
                               rtol=1e-5)  # fmt: skip
    np.testing.assert_allclose(two.samples, one.samples, rtol=1e-5, atol=1e-7)
    # 7 blocks (whole model, 6 groups) x 4 iterations, then 4 Hutchinson vectors in one pass.
    assert (two.hvps, two.passes) == (7 * 4 + 4, 4 + 1)
    assert actual(out) == documented("sharpness")
    assert registry_problems(out) == []
    with h5py.File(out) as f:
        s = f["summary"].attrs
        assert s["top_eigenvalue"] == two.top_eigenvalue and s["hvps"] == 32
        assert s["trace"] == pytest.approx(f["groups/trace"][()].sum())
        assert f["hutchinson/samples"].shape == (4, 6)
        assert f.attrs["config_hash"] == load_run(run).record["config_hash"]
    assert plot_file(out).stat().st_size > 0


def test_sharpness_command_prints_its_table_and_writes_a_documented_file(
    run, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "s.h5"
    code, stdout, _ = run_cli(
        monkeypatch, capsys, "sharpness", str(run), "--batches", "1", "--batch-size", "8",
        "--iterations", "2", "--hutchinson-samples", "2", "--device", "cpu", "--out", str(out),
    )  # fmt: skip
    assert code == 0
    assert "whole model" in stdout and "Hessian-vector products" in stdout
    assert actual(out) == documented("sharpness")
    assert out.with_suffix(".png").stat().st_size > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tol", "-1"], "--tol must be >= 0"),
        (["--batches", "0"], "--batches must be positive"),
        (["--hutchinson-samples", "0"], "--hutchinson-samples must be positive"),
        (["--precision", "fp16"], "--precision"),
        (["--iterations", "many"], "--iterations"),
    ],
)
def test_bad_sharpness_options_end_in_one_line(run, args, message, tmp_path, monkeypatch,
                                               capsys):  # fmt: skip
    out = tmp_path / "s.h5"
    code, _, stderr = run_cli(monkeypatch, capsys, "sharpness", str(run), *args, "--out", str(out))
    assert code != 0 and stderr.startswith("error:") and stderr.count("\n") == 1
    assert message in stderr
    assert not any(tmp_path.iterdir())


def test_a_missing_run_is_one_line(tmp_path, monkeypatch, capsys):
    code, _, stderr = run_cli(monkeypatch, capsys, "sharpness", str(tmp_path / "nope"),
                              "--out", str(tmp_path / "s.h5"))  # fmt: skip
    assert code == 1 and stderr.startswith("error:") and stderr.count("\n") == 1
    assert "nope" in stderr and not (tmp_path / "s.h5").exists()


def test_bench_sharpness_counts_its_products_and_matches_its_documented_layout(tmp_path):
    from landscape.bench.options import BenchOptions, SuiteOptions
    from landscape.bench.suite import run_benchmarks

    options = BenchOptions(image_size=16, batch_size=8, device="cpu")
    sizes = SuiteOptions(sharpness_batches=2, sharpness_iterations=2, hutchinson_samples=3,
                         repeats=1)  # fmt: skip
    report = run_benchmarks(options, only=["sharpness"], sizes=sizes, out_dir=tmp_path)
    path = tmp_path / "sharpness_cpu.h5"
    assert report.files == [path]
    assert actual(path) == documented("bench_sharpness")
    assert registry_problems(path) == []
    with h5py.File(path) as f:
        s = dict(f["summary"].attrs)
    assert (s["examples"], s["batches"], s["groups"]) == (16, 2, 6)
    assert s["hvps"] == 7 * 2 + 3 and s["passes"] == 2 + 1
    assert s["seconds_per_hvp"] == pytest.approx(s["seconds"] / s["hvps"])
    (row,) = report.rows
    assert row.benchmark == "sharpness"
    assert row.ratio == pytest.approx(s["hvp_in_gradients"])


@pytest.mark.extended  # torchrun, as in test_distributed
def test_two_processes_give_the_sharpness_of_one(run, tmp_path):
    from test_distributed import torchrun

    # 40 training images in batches of 12: four batches (the last of 4), two per process.
    flags = ["--batches", "4", "--batch-size", "12", "--iterations", "3", "--tol", "0",
             "--hutchinson-samples", "3", "--device", "cpu"]  # fmt: skip
    options = SharpnessOptions(batches=4, iterations=3, tol=0.0, hutchinson_samples=3,
                               probe=batched(12))  # fmt: skip
    one = sharpness(run, options=options)
    done = torchrun("sharpness", str(run), *flags, "--out", str(tmp_path / "two.h5"))
    assert done.returncode == 0, done.stderr[-3000:]
    with h5py.File(tmp_path / "two.h5") as f:
        assert f["summary"].attrs["examples"] == one.examples == 40
        np.testing.assert_allclose(f["hutchinson/samples"][()], one.samples, rtol=1e-5,
                                   atol=1e-7)  # fmt: skip
        np.testing.assert_allclose(f["groups/top_eigenvalue"][()],
                                   [e.value for e in one.eigen[1:]], rtol=1e-5)  # fmt: skip
        assert f["summary"].attrs["top_eigenvalue"] == pytest.approx(one.top_eigenvalue, rel=1e-5)
