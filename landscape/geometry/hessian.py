"""Curvature of a mean loss through Hessian-vector products, never the Hessian itself: the
top eigenvalue by power iteration and the trace by Hutchinson's estimator, for the whole
parameter vector or for blocks of it (the Hessian restricted to some parameters, the others
held fixed: a diagonal block of the whole Hessian).

A product is double backpropagation: the gradient of each batch's loss with its graph
(``create_graph=True``), then the gradient of its inner product with the vector. One pass
over the batches serves several products (one first backward per batch, one second
backward per vector), so the power iterations of several blocks run in lockstep and
Hutchinson's vectors go several to a pass. Vectors are flat, in the parameters' order,
dtype and device; their random draws come from a CPU generator, so a seed gives the same
vectors on every device and every process.

Under torchrun each process holds its share of the batches and every product is summed
over the processes, so all of them hold the same vectors and take the same steps."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from finetune.distributed import SINGLE, Processes

Block = Sequence[int]


@dataclass(frozen=True)
class MeanLoss:
    """The loss whose curvature is measured: the sum of the ``terms()`` (each batch's
    summed loss, this process's batches) over every process, divided by ``examples`` (every
    process's)."""

    terms: Callable[[], Iterable[torch.Tensor]]
    examples: int
    processes: Processes = SINGLE


class Hessian:
    """Products ``H_bb v`` of the Hessian of ``loss`` with respect to ``params``, restricted
    to blocks ``b`` of them (indices into ``params``); counts what they cost."""

    def __init__(self, loss: MeanLoss, params: Sequence[torch.Tensor]) -> None:
        self.loss = loss
        self.params = list(params)
        self.products_done = 0
        self.passes = 0
        self.value = math.nan

    def size(self, block: Block) -> int:
        """The length of a block's flat vectors."""
        return sum(self.params[i].numel() for i in block)

    def products(
        self, blocks: Sequence[Block], vectors: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        """``H_bb v`` for each block and its flat vector, in one pass over the batches; the
        loss at the parameters is left in ``value``. Attention runs on PyTorch's math
        kernel: the fused ones (flash, memory-efficient) have no second derivative."""
        sums = [torch.zeros_like(v) for v in vectors]
        total = torch.zeros((), dtype=torch.float64, device=vectors[0].device)
        with sdpa_kernel(SDPBackend.MATH):
            self._accumulate(blocks, vectors, sums, total)
        processes = self.loss.processes
        flat = processes.sum_(torch.cat(sums)) / self.loss.examples
        self.value = float(processes.sum_(total)) / self.loss.examples
        self.products_done += len(blocks)
        self.passes += 1
        return list(flat.split([len(v) for v in vectors]))

    def _accumulate(
        self,
        blocks: Sequence[Block],
        vectors: Sequence[torch.Tensor],
        sums: list[torch.Tensor],
        total: torch.Tensor,
    ) -> None:
        """Add this process's batches' products into ``sums`` and their losses into
        ``total``: one gradient with its graph per batch, one second backward per block."""
        wrt = sorted({i for block in blocks for i in block})
        slot = {i: k for k, i in enumerate(wrt)}
        for term in self.loss.terms():
            grads = torch.autograd.grad(
                term,
                [self.params[i] for i in wrt],
                create_graph=True,
                allow_unused=True,
                materialize_grads=True,
            )
            total += term.detach().double()
            for block, vector, acc in zip(blocks, vectors, sums):
                tensors = [self.params[i] for i in block]
                pieces = vector.split([p.numel() for p in tensors])
                dot = sum(
                    (grads[slot[i]] * piece.view(p.shape)).sum()
                    for i, p, piece in zip(block, tensors, pieces)
                )
                if not dot.requires_grad:  # the loss is linear in these parameters
                    continue
                hv = torch.autograd.grad(
                    dot, tensors, retain_graph=True, allow_unused=True, materialize_grads=True
                )
                acc += torch.cat([h.reshape(-1) for h in hv])


@dataclass(frozen=True)
class Eigen:
    """A power iteration's result: the Rayleigh quotient of its last vector, the products
    it took, and whether it met its tolerance within its iterations."""

    value: float
    iterations: int
    converged: bool


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a.double(), b.double()))


def top_eigenvalues(
    hessian: Hessian,
    blocks: Sequence[Block],
    *,
    iterations: int,
    tol: float,
    generator: torch.Generator,
) -> list[Eigen]:
    """The eigenvalue of largest magnitude of each block's Hessian by power iteration from
    a Gaussian vector (drawn in block order): ``v <- Hv / |Hv|`` until the Rayleigh
    quotient ``v.Hv`` changes by at most ``tol`` times its size, or ``iterations`` products.
    The blocks iterate in lockstep, each stopping on its own. Near a minimum the largest
    magnitude is the largest eigenvalue (the positive curvature dominates)."""
    like = hessian.params[0]
    vectors = []
    for block in blocks:
        v = torch.randn(hessian.size(block), generator=generator)
        vectors.append((v / v.norm()).to(device=like.device, dtype=like.dtype))
    values: list[list[float]] = [[] for _ in blocks]
    converged = [False] * len(blocks)
    active = list(range(len(blocks)))
    for _ in range(iterations):
        products = hessian.products([blocks[i] for i in active], [vectors[i] for i in active])
        still = []
        for i, hv in zip(active, products):
            value = _dot(vectors[i], hv)
            previous = values[i][-1] if values[i] else None
            values[i].append(value)
            norm = float(hv.double().norm())
            if norm == 0.0 or (previous is not None and abs(value - previous) <= tol * abs(value)):
                converged[i] = True
                continue
            vectors[i] = hv / norm
            still.append(i)
        active = still
        if not active:
            break
    return [Eigen(v[-1], len(v), c) for v, c in zip(values, converged)]


def rademacher(size: int, generator: torch.Generator) -> torch.Tensor:
    """``size`` independent signs, +1 or -1 with probability 1/2 each."""
    return torch.randint(0, 2, (size,), generator=generator).float() * 2.0 - 1.0


def hutchinson(
    hessian: Hessian,
    block: Block,
    *,
    samples: int,
    segments: Sequence[int],
    generator: torch.Generator,
    vectors_per_pass: int = 1,
) -> np.ndarray:
    """Hutchinson's estimator of the trace of a block's Hessian: for each of ``samples``
    Rademacher vectors ``v``, ``v_k . (Hv)_k`` over consecutive segments ``k`` of the flat
    vector (lengths ``segments``, summing to the block's size), as a (samples, K) float64
    array. Each row sums to ``v.Hv``, whose mean is unbiased for the trace; a segment's
    column is unbiased for the trace of its diagonal block (the cross terms have mean 0)."""
    size = hessian.size(block)
    if sum(segments) != size:
        raise ValueError(f"segments sum to {sum(segments)}, the block has {size} entries")
    like = hessian.params[0]
    rows = []
    for start in range(0, samples, vectors_per_pass):
        count = min(vectors_per_pass, samples - start)
        draws = [rademacher(size, generator) for _ in range(count)]
        vectors = [v.to(device=like.device, dtype=like.dtype) for v in draws]
        for v, hv in zip(vectors, hessian.products([block] * count, vectors)):
            parts = zip(v.split(list(segments)), hv.split(list(segments)))
            dots = torch.stack([torch.dot(a.double(), b.double()) for a, b in parts])
            rows.append(dots.cpu().tolist())  # one host synchronisation per vector
    return np.array(rows, dtype=np.float64).reshape(samples, len(segments))


def mean_and_error(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over the first axis and its standard error (sample standard deviation over
    ``sqrt(n)``; NaN with one sample)."""
    n = samples.shape[0]
    mean = samples.mean(axis=0)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    return mean, samples.std(axis=0, ddof=1) / math.sqrt(n)
