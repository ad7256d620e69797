"""Render the engine's progress events: a tqdm bar with loss, accuracy and images/s, and
one line per epoch with the evaluation metrics."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class ProgressBar:
    """A callable the engine calls with each event; ``quiet`` prints nothing."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.bar: tqdm | None = None

    def __call__(self, event: dict[str, Any]) -> None:
        if self.quiet:
            return
        kind = event["event"]
        if kind == "step":
            if self.bar is not None and (
                event["steps"] != self.bar.total or event["step"] < self.bar.n
            ):
                # A new run after one that stopped without "done" (a pruned sweep trial).
                self.close()
            if self.bar is None:
                self.bar = tqdm(
                    total=event["steps"],
                    initial=event["step"],
                    file=sys.stderr,
                    unit="step",
                    dynamic_ncols=True,
                    leave=False,
                )
            self.bar.update(event["step"] - self.bar.n)
            self.bar.set_postfix(
                epoch=f"{event['epoch']}/{event['epochs']}",
                loss=f"{event['loss']:.3f}" if event["loss"] is not None else "-",
                acc=f"{event['acc']:.3f}",
                img_s=f"{event['images_per_s']:.0f}",
            )
        elif kind == "epoch":
            line = (
                f"epoch {event['epoch']}/{event['epochs']}  train loss {event['train_loss']:.4f}"
                f" acc {event['train_acc']:.3f}  eval loss {event['eval_loss']:.4f}"
                f" acc {event['eval_acc']:.3f}  {event['images_per_s']:.0f} img/s"
            )
            if self.bar is not None:
                self.bar.write(line, file=sys.stderr)
            else:
                print(line, file=sys.stderr)
        elif kind == "done":
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
