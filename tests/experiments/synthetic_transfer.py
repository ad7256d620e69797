"""Does pre-training on ``synthetic:source`` help fine-tuning on ``synthetic:near`` more
than on ``synthetic:far``? A plain PyTorch loop with the engine's recipe, on the CPU.

For each seed: pre-train timm's ``test_resnet`` on the source train split (12 epochs, about
a minute on 2 CPU threads; ``--pretrain-epochs 6`` is the demo's recipe), then fine-tune
it, and a randomly initialised copy, on 10 images per class of near and of far; print test
accuracies and the gaps. Run with ``python tests/experiments/synthetic_transfer.py``;
results are in docs/synthetic.md.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import timm
import torch
from torch import nn

from finetune.data import get_dataset

SIZE = 32
PRETRAIN = {"batch_size": 128, "lr": 0.05}
FINETUNE = {"batch_size": 32, "lr": 0.01, "epochs": 30}
SHOTS = 10


def load(
    task: str, split: str, seed: int = 0, shots: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8 N,3,H,W) and labels of one split of ``synthetic:task``; ``shots`` per
    class subsampled with ``seed`` as the engine does."""
    data = get_dataset(
        f"synthetic:{task}", split, image_size=SIZE, train_per_class=shots, split_seed=seed
    )
    return data.tensors()


def prepare(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """uint8 -> normalised float; with a generator, random translation by up to size/8
    (reflect padding, random crop) and random horizontal flip."""
    x = (images.float() / 255.0 - 0.5) / 0.5
    if generator is None:
        return x
    n, _, h, w = x.shape
    pad = h // 8
    padded = nn.functional.pad(x, (pad,) * 4, mode="reflect")
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, 3, h, w + 2 * pad)
    x = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, 3, h, w)
    x = x.gather(3, cols)
    flip = torch.rand(n, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def optimizer(model: nn.Module, lr: float) -> torch.optim.SGD:
    """SGD with momentum 0.9 and weight decay 5e-4 on conv/linear weights only."""
    decayed = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    ids = {id(p) for p in decayed}
    rest = [p for p in model.parameters() if id(p) not in ids]
    return torch.optim.SGD(
        [{"params": decayed, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0.0}],
        lr=lr, momentum=0.9,
    )


def train(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int,
    batch_size: int, lr: float, seed: int,
) -> None:
    """Cosine-scheduled SGD (per step, no warm-up) with augmentation."""
    generator = torch.Generator().manual_seed(seed)
    opt = optimizer(model, lr)
    steps_per_epoch = math.ceil(len(labels) / batch_size)
    total, step = epochs * steps_per_epoch, 0
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            for group in opt.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
            loss = nn.functional.cross_entropy(
                model(prepare(images[batch], generator)), labels[batch]
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 test accuracy in percent."""
    model.eval()
    logits = torch.cat([model(prepare(chunk, None)) for chunk in images.split(500)])
    return 100.0 * (logits.argmax(1) == labels).float().mean().item()


def pretrain(seed: int, epochs: int) -> tuple[nn.Module, float, float]:
    """test_resnet trained on source; returns it, its source test accuracy, seconds taken."""
    torch.manual_seed(seed)
    images, labels = load("source", "train")
    model = timm.create_model("test_resnet", num_classes=int(labels.max()) + 1)
    start = time.perf_counter()
    train(model, images, labels, epochs=epochs, seed=seed, **PRETRAIN)
    seconds = time.perf_counter() - start
    return model, accuracy(model, *load("source", "test")), seconds


def finetune(source: nn.Module | None, task: str, seed: int) -> float:
    """Test accuracy after fine-tuning ``source`` (None: random init) on SHOTS per class."""
    images, labels = load(task, "train", seed, SHOTS)
    classes = int(labels.max()) + 1
    torch.manual_seed(1000 + seed)
    model = timm.create_model("test_resnet", num_classes=classes)
    if source is not None:
        weights = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
        model.load_state_dict(weights, strict=False)
    train(model, images, labels, seed=seed, **FINETUNE)
    return accuracy(model, *load(task, "test"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(2)
    gaps: dict[str, list[float]] = {"near": [], "far": []}
    for seed in range(args.seeds):
        model, source_acc, seconds = pretrain(seed, args.pretrain_epochs)
        print(f"seed {seed}: pre-trained {args.pretrain_epochs} epochs in {seconds:.0f} s, "
              f"source test accuracy {source_acc:.1f}%")
        for task in gaps:
            pre, scratch = finetune(model, task, seed), finetune(None, task, seed)
            gaps[task].append(pre - scratch)
            print(f"  {task:4s}: pretrained {pre:5.1f}%  scratch {scratch:5.1f}%  "
                  f"gap {pre - scratch:+5.1f}", flush=True)
    for task, values in gaps.items():
        print(f"{task}: gap mean {np.mean(values):+.1f}, min {np.min(values):+.1f}")


if __name__ == "__main__":
    main()
