"""The compiled engine against the compiled plain loop of ``landscape bench``: the graphs
dynamo builds, the calls each one serves and the graph breaks, counted with a recording
backend that runs every graph as traced (no Inductor, so a count takes seconds). Both
loops compile the model alone; the engine must train on one static graph, as the plain
loop does, and its whole step, traced by dynamo, may break the graph only where the plain
step does and where it seeds its random draws."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F
from conftest import fast_config
from torch._dynamo.utils import counters

from finetune import engine
from finetune.engine.history import History
from finetune.engine.meter import EpochMeter
from finetune.engine.setup import build_setup
from finetune.engine.stages import enter, set_scales
from finetune.engine.step import StepTools, train_step
from landscape.bench.training import plain_loop_throughput

# The benchmark's loops: no augmentation, no weight decay (conftest's FAST: 10 classes of
# 4 images, batches of 8, so every batch is full).
BENCH = dict(augment=False, l2=0.0)


@dataclass(frozen=True)
class Graph:
    """One graph dynamo handed to the backend."""

    grad: bool  # traced with gradients on: a training graph (evaluation runs without)
    dynamic: bool  # traced with a symbolic size


@dataclass
class Recorder:
    """A dynamo backend keeping every graph it is given and the graph of every call."""

    graphs: list[Graph] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)

    def backend(self, gm: torch.fx.GraphModule, inputs: list) -> Callable:
        index = len(self.graphs)
        dynamic = any(isinstance(i, torch.SymInt) for i in inputs)
        self.graphs.append(Graph(torch.is_grad_enabled(), dynamic))

        def run(*args):
            self.calls.append(index)
            return gm(*args)

        return run

    def training_calls(self) -> list[int]:
        """The graph of every training call, in order."""
        return [i for i in self.calls if self.graphs[i].grad]


@pytest.fixture
def record(monkeypatch) -> Callable[[], Recorder]:
    """Every torch.compile of the test records into the recorder ``record()`` returns; each
    call of ``record()`` starts a new one, with dynamo's caches and counters emptied."""
    compile_ = torch.compile
    current: list[Recorder] = []

    def start() -> Recorder:
        torch._dynamo.reset()
        counters.clear()
        current[:] = [Recorder()]
        return current[0]

    def compile_recorded(*args, **kwargs):
        return compile_(*args, backend=lambda gm, inputs: current[0].backend(gm, inputs), **kwargs)

    monkeypatch.setattr(torch, "compile", compile_recorded)
    yield start
    torch._dynamo.reset()


def _breaks() -> Counter:
    """The graph breaks since the counters were last emptied, by reason."""
    return Counter(counters["graph_break"])


@pytest.mark.parametrize(
    "options",
    [{}, {"delta": 0.1, "bss": 0.1}, {"auto_lr": "rgn"}],
    ids=["bench", "feature-hooks", "auto-rgn"],
)
def test_compiled_engine_trains_on_one_graph_as_the_compiled_plain_loop(tmp_path, record, options):
    config = fast_config("pretrain", compile=True, **BENCH, **options)
    engine_run = record()
    engine.train(config, tmp_path / "run", command="test")
    engine_breaks = _breaks()
    plain = record()
    plain_loop_throughput(config, steps=2)
    assert plain.graphs == [Graph(grad=True, dynamic=False)] and not _breaks()
    # The engine adds only its evaluation's graphs (no gradients, eval mode), which the
    # plain loop does not run; every training step runs the first step's graph, and so do
    # DELTA's and BSS's feature hooks and Auto-RGN's gradients, without a recompilation.
    training = [g for g in engine_run.graphs if g.grad]
    assert training == plain.graphs and not engine_breaks
    assert set(engine_run.training_calls()) == {engine_run.graphs.index(training[0])}


def test_a_smaller_last_batch_leaves_the_full_batches_on_their_static_graph(tmp_path, record):
    # 50 images in batches of 8: six full batches and one of 2 in each epoch.
    config = fast_config("pretrain", compile=True, train_per_class=5, **BENCH)
    run = record()
    engine.train(config, tmp_path / "run", command="test")
    full, last = [i for i, g in enumerate(run.graphs) if g.grad]
    assert not run.graphs[full].dynamic and not run.graphs[last].dynamic
    assert run.training_calls() == ([full] * 6 + [last]) * config.train.epochs


def test_the_engine_step_breaks_the_graph_only_where_the_plain_step_does_and_to_seed(record):
    """Traced whole, the step may break where the plain step breaks (the optimizer's
    zero_grad and step, backward) and where it seeds the step's draws, which dynamo cannot
    trace; a read of a device value on the host (``.item()``, ``.tolist()``, a branch on
    a tensor) would be one more break, and on a GPU a wait for the device at every step."""
    s = build_setup(fast_config(augment=False))  # with L2 on the weights
    stage = s.stages[-1]
    enter(stage, s.model)
    set_scales(s.optimizer, stage.lr_scales)
    batch = next(s.train_batches.iterate(torch.arange(len(s.train_set)), 8))
    meter = EpochMeter(s, 0, 0, {})
    record()
    torch.compile(train_step)(s, StepTools.for_run(s), stage, batch, 0, 0, meter, History())
    engine_breaks = _breaks()

    def plain_step(images: torch.Tensor, labels: torch.Tensor) -> None:
        loss = F.cross_entropy(s.model(s.train_prep(images)).float(), labels)
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        s.optimizer.step()

    record()
    torch.compile(plain_step)(*batch)
    plain_breaks = _breaks()
    assert plain_breaks and plain_breaks <= engine_breaks
    extra = engine_breaks - plain_breaks
    assert sum(extra.values()) == 2 and all("manual_seed" in reason for reason in extra)
