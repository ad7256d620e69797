"""One epoch's training loss and accuracy, kept on the device and read back to the host only
when logged, so the loop never waits on the device between logging intervals."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch

from finetune.engine.history import History

if TYPE_CHECKING:
    from finetune.engine.setup import Setup


class Diverged(Exception):
    """The loss became NaN or infinite."""


class EpochMeter:
    """One epoch's losses and correct predictions, kept on the device and read back to the
    host only when logged; restarts mid-epoch from a checkpoint's partial counts. Under DDP
    each process keeps its own share, summed over the processes when logged."""

    def __init__(self, s: Setup, epoch: int, first: int, partial: dict[str, float]) -> None:
        device = s.runtime.device
        self.processes = s.runtime.processes
        self.losses = torch.zeros(s.steps_per_epoch, device=device)
        # A resumed epoch's count so far enters the sum once, through the main process.
        start = int(partial.get("correct", 0)) if self.processes.main else 0
        self.correct = torch.full((), start, device=device)
        self.total_correct = int(partial.get("correct", 0))
        self.seen = int(partial.get("seen", 0))
        self.logged = first
        self.first_step = epoch * s.steps_per_epoch
        self.start = time.perf_counter() - partial.get("seconds", 0.0)

    def record(
        self,
        i: int,
        loss: torch.Tensor,
        logits: torch.Tensor,
        labels: torch.Tensor,
        global_n: int,
    ) -> None:
        """Step ``i``'s share of the global batch's mean loss, this process's correct
        predictions, and the ``global_n`` examples the step saw over all processes."""
        self.losses[i] = loss.detach()
        self.correct += (logits.argmax(1) == labels).sum()
        self.seen += global_n

    def flush(self, upto: int, history: History) -> list[float]:
        """Append the losses of this epoch's steps [logged, upto) to the history; a NaN or
        infinite one raises Diverged naming its step (on every process alike)."""
        self.total_correct = int(self.processes.sum_(self.correct.clone()))
        chunk = self.processes.sum_(self.losses[self.logged : upto].clone()).tolist()
        bad = [k for k, v in enumerate(chunk) if not math.isfinite(v)]
        if bad:
            raise Diverged(f"non-finite loss at step {self.first_step + self.logged + bad[0] + 1}")
        history.step_loss.extend(chunk)
        self.logged = upto
        return chunk

    def accuracy(self) -> float:
        """Training accuracy up to the last flush."""
        return self.total_correct / max(self.seen, 1)

    def elapsed(self) -> float:
        """Seconds spent on this epoch, including those before a resume."""
        return time.perf_counter() - self.start

    def partial(self) -> dict[str, float]:
        """The counts a mid-epoch checkpoint saves, for the meter that resumes it."""
        return {"correct": self.total_correct, "seen": self.seen, "seconds": self.elapsed()}
