"""Diagonal Fisher information of named parameters, for L2-SP-Fisher (Li et al. 2018).

``F_i = E_x[(d log p(y|x) / d w_i)^2]`` averaged over examples with per-example gradients
(``torch.func``), not the square of a batch-mean gradient, which underestimates it. The
model is evaluated in eval mode, so BatchNorm uses its running statistics and every
example's gradient is independent of the others in its batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import islice

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap


def estimate_fisher(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    param_names: Sequence[str],
    *,
    n_batches: int,
    labels: str = "true",
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Mean squared per-example gradient of the log-likelihood for each named parameter,
    over the examples of the first ``n_batches`` batches of prepared (inputs, labels) on
    the model's device; float32 tensors shaped and placed like the parameters.
    ``labels="true"`` gives the empirical Fisher; ``"model"`` samples y from the model's
    predictive distribution with ``generator`` (on the model's device). Per-example
    gradients of a batch are held at once: memory grows with batch size times the size of
    the named parameters. Parameters, buffers and train/eval mode are left as they were."""
    if labels not in ("true", "model"):
        raise ValueError(f"labels must be 'true' or 'model', got {labels!r}")
    named = dict(model.named_parameters())
    unknown = [n for n in param_names if n not in named]
    if unknown:
        raise ValueError(f"no such parameters: {unknown}")
    wanted = {n: named[n].detach() for n in param_names}
    fixed = {n: p.detach() for n, p in named.items() if n not in wanted}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def log_likelihood(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, ({**fixed, **params}, buffers), (x.unsqueeze(0),))
        return -F.cross_entropy(logits.float(), y.unsqueeze(0))

    per_example = vmap(grad(log_likelihood), in_dims=(None, 0, 0))
    totals = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in wanted.items()}
    seen = 0
    was_training = model.training
    model.eval()
    try:
        for x, y in islice(batches, n_batches):
            if labels == "model":
                with torch.no_grad():
                    probs = model(x).float().softmax(1)
                y = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            grads = per_example(wanted, x, y)
            for n, g in grads.items():
                totals[n] += g.float().square().sum(0)
            seen += len(y)
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("no examples to estimate the Fisher information from")
    return {n: t / seen for n, t in totals.items()}
