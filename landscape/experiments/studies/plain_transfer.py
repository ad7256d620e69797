"""Does pre-training on ``synthetic:source`` help fine-tuning on ``synthetic:near`` more than
on ``synthetic:far``? Measured with a plain PyTorch loop, not the ``landscape`` engine, so
that the synthetic tasks' transfer effect stands on its own: timm's ``test_resnet``, inputs
``(x/255 - 0.5)/0.5``, SGD momentum 0.9, weight decay 5e-4 on conv and linear weights only,
a per-step cosine schedule without warm-up, augmentation by a random translation of up to
a size/8 (reflect padding, random crop) and a random horizontal flip. Each seed pre-trains
its own source (batch 128, lr 0.05) and fine-tunes it, and a random-init twin, on 10 images
per class of near and of far (new head, every layer trained, batch 32).

The settings: sources of 12 and of 6 epochs (the demo's) with the fine-tuning recipe (lr
0.01, 30 epochs) on seeds 0-2; and seed 0's 10-epoch source under the recipe, under a
larger rate (lr 0.05) and under a longer schedule (100 epochs), which says how much of the
far gain is a better-conditioned start rather than reused features."""

from __future__ import annotations

import math
import time
from pathlib import Path

import h5py
import numpy as np
import timm
import torch
from torch import nn

from finetune.data import get_dataset
from finetune.errors import ConfigError
from finetune.result_files import write_result
from landscape.experiments.options import ReproOptions
from landscape.experiments.recipes import results_folder
from landscape.experiments.studies import register_study
from landscape.experiments.tables import ROOT, register_table
from probes.statistics import mean_sd

NAME = "plain_transfer"
FILE = "plain_transfer.h5"
SIZE = 32
SHOTS = 10  # training images per class of each target
PRETRAIN = {"batch_size": 128, "lr": 0.05}
BATCH = 32
TARGETS = ("near", "far")
INITS = ("pretrained", "scratch")
RECIPE = (0.01, 30)  # fine-tuning (lr, epochs)
# (source epochs, seed, fine-tuning lr, fine-tuning epochs) of every row.
SETTINGS = (
    *((12, seed, *RECIPE) for seed in (0, 1, 2)),
    *((6, seed, *RECIPE) for seed in (0, 1, 2)),
    (10, 0, *RECIPE),
    (10, 0, 0.05, 30),
    (10, 0, 0.01, 100),
)
QUICK_SETTINGS = ((1, 0, 0.01, 2),)
QUICK_SOURCE_IMAGES = 20  # per class, the quick study's source


def load(task: str, split: str, seed: int = 0, shots: int | None = None) -> tuple:
    """Images (uint8 N, 3, H, W) and labels of one split of ``synthetic:task``, ``shots``
    per class drawn with ``seed`` as the engine draws them."""
    data = get_dataset(
        f"synthetic:{task}", split, image_size=SIZE, train_per_class=shots, split_seed=seed
    )
    return data.tensors()


def prepare(images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """uint8 -> normalised float; with a generator, a random translation by up to size/8
    (reflect padding, random crop) and a random horizontal flip."""
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


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int,
          batch_size: int, lr: float, seed: int) -> None:  # fmt: skip
    """Cosine-scheduled SGD (per step, no warm-up) with augmentation; weight decay 5e-4 on
    conv and linear weights only."""
    decayed = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    rest = [p for p in model.parameters() if all(p is not d for d in decayed)]
    opt = torch.optim.SGD([{"params": decayed, "weight_decay": 5e-4},
                           {"params": rest, "weight_decay": 0.0}], lr=lr, momentum=0.9)  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    total, step = epochs * math.ceil(len(labels) / batch_size), 0
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            for group in opt.param_groups:
                group["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
            logits = model(prepare(images[batch], generator))
            loss = nn.functional.cross_entropy(logits, labels[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy, a fraction."""
    model.eval()
    logits = torch.cat([model(prepare(chunk, None)) for chunk in images.split(500)])
    return float((logits.argmax(1) == labels).float().mean())


def pretrain(epochs: int, seed: int, per_class: int | None) -> tuple[nn.Module, float, float]:
    """test_resnet trained on the source: the model, its test accuracy, its seconds."""
    torch.manual_seed(seed)
    images, labels = load("source", "train", seed, per_class)
    model = timm.create_model("test_resnet", num_classes=int(labels.max()) + 1)
    start = time.perf_counter()
    train(model, images, labels, epochs=epochs, seed=seed, **PRETRAIN)
    seconds = time.perf_counter() - start
    return model, accuracy(model, *load("source", "test")), seconds


def finetune(source: nn.Module | None, task: str, seed: int, lr: float, epochs: int) -> float:
    """Test accuracy after fine-tuning ``source`` (None: random init) on SHOTS per class."""
    images, labels = load(task, "train", seed, SHOTS)
    torch.manual_seed(1000 + seed)
    model = timm.create_model("test_resnet", num_classes=int(labels.max()) + 1)
    if source is not None:
        weights = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
        model.load_state_dict(weights, strict=False)
    train(model, images, labels, epochs=epochs, batch_size=BATCH, lr=lr, seed=seed)
    return accuracy(model, *load(task, "test"))


@register_study(
    NAME, "the synthetic pair's transfer effect with a plain PyTorch loop", run_dirs=False
)
def plain_transfer(options: ReproOptions, out: Path) -> list[Path]:
    if options.pair != "synthetic":
        raise ConfigError("plain_transfer measures the synthetic tasks; leave out --pair")
    settings = QUICK_SETTINGS if options.quick else SETTINGS
    per_class = QUICK_SOURCE_IMAGES if options.quick else None
    sources: dict[tuple[int, int], tuple[nn.Module, float, float]] = {}
    measured = np.full((len(settings), len(TARGETS), len(INITS)), np.nan)
    for row, (source_epochs, seed, lr, epochs) in enumerate(settings):
        if (source_epochs, seed) not in sources:
            options.log(f"pre-training {source_epochs} epochs, seed {seed}")
            sources[source_epochs, seed] = pretrain(source_epochs, seed, per_class)
        model = sources[source_epochs, seed][0]
        for t, task in enumerate(TARGETS):
            options.log(f"fine-tuning on {task}, seed {seed}, lr {lr:g}, {epochs} epochs")
            measured[row, t] = [finetune(model, task, seed, lr, epochs),
                                finetune(None, task, seed, lr, epochs)]  # fmt: skip
    path = out / FILE
    columns = np.array(settings, dtype=np.float64)
    write_result(
        path,
        "plain_transfer",
        {
            "settings/source_epochs": columns[:, 0].astype(np.int64),
            "settings/seed": columns[:, 1].astype(np.int64),
            "settings/lr": columns[:, 2],
            "settings/epochs": columns[:, 3].astype(np.int64),
            "source_test_acc": np.array([sources[int(e), int(s)][1] for e, s, *_ in settings]),
            "pretrain_seconds": np.array([sources[int(e), int(s)][2] for e, s, *_ in settings]),
            "targets": list(TARGETS),
            "inits": list(INITS),
            "test_acc": measured,
        },
        attrs={
            "model": "test_resnet",
            "image_size": SIZE,
            "shots": SHOTS,
            "threads": torch.get_num_threads(),
            "quick": options.quick,
        },  # fmt: skip
        summary={"rows": len(settings)},
    )
    return [path]


def _read() -> dict[str, np.ndarray]:
    """The committed study's numbers (the synthetic pair's folder)."""
    with h5py.File(ROOT / results_folder("synthetic") / FILE) as f:
        return {name: f[name][()] for name in (
            "settings/source_epochs", "settings/seed", "settings/lr", "settings/epochs",
            "source_test_acc", "pretrain_seconds", "test_acc")}  # fmt: skip


@register_table("plain-transfer")
def plain_transfer_table() -> str:
    """The recipe's rows per source length: each seed's source and target accuracies (in
    percent) and gains, then their means."""
    f = _read()
    recipe = (f["settings/lr"] == RECIPE[0]) & (f["settings/epochs"] == RECIPE[1])
    lines = [
        "| source epochs | seed | pre-training | source test | near pretrained | near scratch "
        "| near gain | far pretrained | far scratch | far gain |",
        "|" + " --- |" * 10,
    ]
    for epochs in (12, 6):
        rows = np.flatnonzero(recipe & (f["settings/source_epochs"] == epochs))
        for r in rows:
            seconds = f"{f['pretrain_seconds'][r]:.0f} s"
            cells = _cells(f["source_test_acc"][r : r + 1], f["test_acc"][r : r + 1])
            lines.append(f"| {epochs} | {f['settings/seed'][r]} | {seconds} | {cells} |")
        cells = _cells(f["source_test_acc"][rows], f["test_acc"][rows])
        lines.append(f"| {epochs} | mean ± sd | | {cells} |")
    return "\n".join(lines)


@register_table("plain-transfer-recipes")
def recipes_table() -> str:
    """Seed 0's 10-epoch source under each fine-tuning recipe: pretrained vs scratch."""
    f = _read()
    lines = ["| fine-tuning | near | far |", "| --- | --- | --- |"]
    for r in np.flatnonzero(f["settings/source_epochs"] == 10):
        acc = 100 * f["test_acc"][r]
        cells = [f"{acc[t, 0]:.1f} vs {acc[t, 1]:.1f}" for t in range(len(TARGETS))]
        lines.append(f"| lr {f['settings/lr'][r]:g}, {f['settings/epochs'][r]} epochs | "
                     + " | ".join(cells) + " |")  # fmt: skip
    return "\n".join(lines)


def _cells(source: np.ndarray, acc: np.ndarray) -> str:
    """Source accuracy, then per target pretrained, scratch and gain, in percent; mean ± sd
    when there are several rows."""

    parts = [mean_sd(source, ".1f", 100)]
    for t in range(len(TARGETS)):
        parts += [mean_sd(acc[:, t, 0], ".1f", 100), mean_sd(acc[:, t, 1], ".1f", 100),
                  mean_sd(acc[:, t, 0] - acc[:, t, 1], "+.1f", 100)]  # fmt: skip
    return " | ".join(parts)
