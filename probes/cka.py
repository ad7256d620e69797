"""Centered kernel alignment (Kornblith et al. 2019) between representations of the same
examples, and its minibatch form (Nguyen, Raghu, Kornblith 2021) for whole layers-by-layers
matrices over data that never sits in memory at once.

Conventions follow the authors' reference notebook: the RBF bandwidth is
``threshold^2 * median`` of the squared distances, zero diagonal included; the debiased
estimator is the unbiased HSIC of Song et al. 2012. Everything is computed in float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist

Array = torch.Tensor | np.ndarray


def linear_cka(x: Array, y: Array, debiased: bool = False) -> float:
    """Linear CKA of two (examples, features) matrices of the same examples.

    The biased form uses the feature-space identity ``||Y^T X||^2 / (||X^T X|| ||Y^T Y||)``
    on column-centred features (cheap when features < examples); the debiased form goes
    through the Gram matrices and the unbiased HSIC."""
    x, y = _pair(x, y)
    if debiased:
        return _cka_from_grams(x @ x.T, y @ y.T, debiased=True)
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    norm_x = torch.linalg.matrix_norm(x.T @ x)
    norm_y = torch.linalg.matrix_norm(y.T @ y)
    return float(cross / (norm_x * norm_y))


def rbf_cka(x: Array, y: Array, threshold: float = 1.0, debiased: bool = False) -> float:
    """CKA with RBF kernels whose bandwidth is ``threshold`` times the square root of the
    median squared distance between examples (per representation)."""
    x, y = _pair(x, y)
    return _cka_from_grams(rbf_gram(x, threshold), rbf_gram(y, threshold), debiased=debiased)


def rbf_gram(x: torch.Tensor, threshold: float = 1.0) -> torch.Tensor:
    """``exp(-d^2 / (2 threshold^2 median(d^2)))`` over all pairs of rows of ``x``."""
    dots = x @ x.T
    squared_norms = torch.diagonal(dots)
    distances = squared_norms[:, None] + squared_norms[None, :] - 2 * dots
    median = _median(distances.flatten())
    return torch.exp(-distances / (2 * threshold**2 * median))


def _median(values: torch.Tensor) -> torch.Tensor:
    """The median as numpy takes it (mean of the two middle values of an even count)."""
    ordered = values.sort().values
    half = len(ordered) // 2
    return ordered[half] if len(ordered) % 2 else (ordered[half - 1] + ordered[half]) / 2


def hsic(k: torch.Tensor, l: torch.Tensor, debiased: bool) -> torch.Tensor:  # noqa: E741
    """HSIC of Gram matrices batched over leading dims: ``k`` (..., n, n) against ``l``
    (..., n, n). Biased: ``tr(KHLH) / (n-1)^2``. Debiased: Song et al.'s unbiased
    estimator, which needs n >= 4."""
    n = k.shape[-1]
    if debiased:
        return _unbiased_hsic(k, l)
    centre = torch.eye(n, dtype=k.dtype, device=k.device) - 1.0 / n
    kc = centre @ k @ centre
    return (kc * l).sum((-2, -1)) / (n - 1) ** 2


def _unbiased_hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:  # noqa: E741
    n = k.shape[-1]
    if n < 4:
        raise ValueError(f"the unbiased HSIC needs at least 4 examples, got {n}")
    k = _zero_diagonal(k)
    l = _zero_diagonal(l)  # noqa: E741
    trace = (k * l).sum((-2, -1))
    sums = k.sum((-2, -1)) * l.sum((-2, -1)) / ((n - 1) * (n - 2))
    rows = (k.sum(-1) * l.sum(-1)).sum(-1) * 2 / (n - 2)
    return (trace + sums - rows) / (n * (n - 3))


def _cka_from_grams(k: torch.Tensor, l: torch.Tensor, debiased: bool) -> float:  # noqa: E741
    cross = hsic(k, l, debiased)
    return float(cross / torch.sqrt(hsic(k, k, debiased) * hsic(l, l, debiased)))


def _zero_diagonal(gram: torch.Tensor) -> torch.Tensor:
    return gram - torch.diag_embed(torch.diagonal(gram, dim1=-2, dim2=-1))


def _pair(x: Array, y: Array) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _as_float64(x), _as_float64(y)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(
            f"CKA takes (examples, features) matrices, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA compares the same examples: {x.shape[0]} != {y.shape[0]} rows")
    return x, y.to(x.device)


def _as_float64(a: Array) -> torch.Tensor:
    t = torch.as_tensor(a) if isinstance(a, np.ndarray) else a.detach()
    return t.to(torch.float64)


class MinibatchCKA:
    """Accumulates the unbiased HSIC of every (layer of A, layer of B) pair over
    minibatches; ``compute()`` gives the layers-by-layers CKA matrix.

    State is three float64 sums on the device (La x Lb, La, Lb): memory is independent of
    the number of examples, and no value is read back to the host until ``compute()``.
    Each batch needs at least 4 examples. Under DDP, ``all_reduce()`` sums the states of all
    processes, so the matrix equals that of one process seeing all their batches.
    """

    def __init__(
        self,
        layers_a: int,
        layers_b: int,
        device: str | torch.device = "cpu",
        *,
        keep_batches: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.cross = torch.zeros(layers_a, layers_b, dtype=torch.float64, device=self.device)
        self.self_a = torch.zeros(layers_a, dtype=torch.float64, device=self.device)
        self.self_b = torch.zeros(layers_b, dtype=torch.float64, device=self.device)
        self.batches = torch.zeros((), dtype=torch.float64, device=self.device)
        # With keep_batches, every batch's three HSIC terms, for errors over batches.
        self.kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = (
            [] if keep_batches else None
        )

    @torch.no_grad()
    def update(self, feats_a: Sequence[Array], feats_b: Sequence[Array]) -> None:
        """One minibatch: the features of each layer of A and of B on the same examples,
        each (examples, ...) and flattened past the first dimension."""
        grams_a = self._grams(feats_a, self.self_a.shape[0], "A")
        grams_b = self._grams(feats_b, self.self_b.shape[0], "B")
        if grams_a.shape[-1] != grams_b.shape[-1]:
            raise ValueError("A and B must see the same examples in a batch")
        if grams_a.shape[-1] < 4:
            raise ValueError(f"minibatch CKA needs batches of at least 4, got {grams_a.shape[-1]}")
        terms = (
            _pairwise_unbiased_hsic(grams_a, grams_b),
            _unbiased_hsic(grams_a, grams_a),
            _unbiased_hsic(grams_b, grams_b),
        )
        self.cross += terms[0]
        self.self_a += terms[1]
        self.self_b += terms[2]
        self.batches += 1
        if self.kept is not None:
            self.kept.append(terms)

    def all_reduce(self) -> None:
        """Sum the accumulators over the processes of the default process group."""
        if dist.is_available() and dist.is_initialized():
            for tensor in (self.cross, self.self_a, self.self_b, self.batches):
                dist.all_reduce(tensor)

    def batch_terms(self) -> np.ndarray:
        """(batches, La + 2, Lb) on the host, one slab per batch kept (``keep_batches``):
        the cross HSIC matrix, then A's self-HSIC and B's self-HSIC padded into rows, so
        that ``cka_of_terms`` of any sum of slabs is the CKA matrix of those batches."""
        if not self.kept:
            raise ValueError("no batch was kept: MinibatchCKA(..., keep_batches=True)")
        la, lb = self.cross.shape
        width = max(la, lb)
        slabs = []
        for cross, self_a, self_b in self.kept:
            slab = torch.zeros(la + 2, width, dtype=torch.float64)
            slab[:la, :lb] = cross.cpu()
            slab[la, :la] = self_a.cpu()
            slab[la + 1, :lb] = self_b.cpu()
            slabs.append(slab)
        return torch.stack(slabs).numpy()

    def compute(self) -> np.ndarray:
        """The (La, Lb) CKA matrix of everything seen so far."""
        if float(self.batches) == 0:
            raise ValueError("MinibatchCKA.compute() before any update()")
        matrix = self.cross / torch.sqrt(self.self_a[:, None] * self.self_b[None, :])
        return matrix.cpu().numpy()

    def _grams(self, feats: Sequence[Array], expected: int, side: str) -> torch.Tensor:
        if len(feats) != expected:
            raise ValueError(f"expected {expected} layers for {side}, got {len(feats)}")
        flat = [_as_float64(f).to(self.device).flatten(1) for f in feats]
        return torch.stack([f @ f.T for f in flat])


def _pairwise_unbiased_hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:  # noqa: E741
    """Unbiased HSIC of every Gram in ``k`` (La, n, n) against every Gram in ``l``
    (Lb, n, n): an (La, Lb) matrix from three contractions, without the La x Lb products."""
    n = k.shape[-1]
    k = _zero_diagonal(k)
    l = _zero_diagonal(l)  # noqa: E741
    trace = torch.einsum("axy,bxy->ab", k, l)
    sums = torch.outer(k.sum((-2, -1)), l.sum((-2, -1))) / ((n - 1) * (n - 2))
    rows = torch.einsum("ax,bx->ab", k.sum(-1), l.sum(-1)) * 2 / (n - 2)
    return (trace + sums - rows) / (n * (n - 3))


def cka_of_terms(terms: np.ndarray, layers_a: int, layers_b: int) -> np.ndarray:
    """The (La, Lb) CKA matrix of summed ``MinibatchCKA.batch_terms`` slabs."""
    cross = terms[:layers_a, :layers_b]
    self_a, self_b = terms[layers_a, :layers_a], terms[layers_a + 1, :layers_b]
    with np.errstate(invalid="ignore", divide="ignore"):
        return cross / np.sqrt(self_a[:, None] * self_b[None, :])
