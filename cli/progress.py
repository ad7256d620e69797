"""Render progress events: the engine's (a tqdm bar of steps with loss, accuracy and
images/s, and one line per epoch) and a grid's (``ReproOptions.measure``: one bar of runs,
done, reused and left, with the time left). On a terminal the bars redraw in place; into a
file (a log) nothing redraws: a single run writes its epoch lines, a grid one line per
finished run."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from tqdm import tqdm


class ProgressBar:
    """A callable the engine and a grid call with each event; ``quiet`` prints nothing;
    ``stream`` is where it writes (default: stderr), a terminal or not."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self.bar: tqdm | None = None  # the steps of one run
        self.grid: tqdm | None = None  # the runs of a grid, on a terminal
        self.grid_total = 0  # the runs of the grid under way (0: none)

    def __call__(self, event: dict[str, Any]) -> None:
        if self.quiet:
            return
        kind = event["event"]
        if kind == "grid":
            self._grid(event)
        elif kind == "step" and self.grid is not None:
            self.grid.set_postfix_str(f"{event['epoch']}/{event['epochs']} epochs of a run")
        elif kind == "step" and self.live:
            self._step(event)
        elif kind == "epoch" and not self.grid_total:
            self._write(
                f"epoch {event['epoch']}/{event['epochs']}  train loss {event['train_loss']:.4f}"
                f" acc {event['train_acc']:.3f}  eval loss {event['eval_loss']:.4f}"
                f" acc {event['eval_acc']:.3f}  {event['images_per_s']:.0f} img/s"
            )
        elif kind == "done":
            self._close_steps()

    def _grid(self, event: dict[str, Any]) -> None:
        """A grid's start (done 0) or a finished run of it: the bar of runs on a terminal,
        one line per finished run otherwise; the grid ends when every run is done."""
        done, total = event["done"], event["total"]
        self.grid_total = total
        left = duration(event["seconds_left"])
        if self.live:
            if self.grid is None:
                self.grid = tqdm(total=total, file=self.stream, unit="run", dynamic_ncols=True,
                                 leave=False, bar_format="{l_bar}{bar}| {n}/{total} runs "
                                 "{postfix}")  # fmt: skip
            self.grid.update(done - self.grid.n)
            self.grid.set_postfix_str(f"{event['reused']} reused, about {left} left")
        elif done:
            how = "reused" if event["was_reused"] else f"trained in {duration(event['seconds'])}"
            self._write(f"run {done}/{total} {how}: {event['name']}; about {left} left")
        if done == total:
            self.close()

    def _step(self, event: dict[str, Any]) -> None:
        if self.bar is not None and (
            event["steps"] != self.bar.total or event["step"] < self.bar.n
        ):
            # A new run after one that stopped without "done" (a pruned sweep trial).
            self._close_steps()
        if self.bar is None:
            self.bar = tqdm(total=event["steps"], initial=event["step"], file=self.stream,
                            unit="step", dynamic_ncols=True, leave=False)  # fmt: skip
        self.bar.update(event["step"] - self.bar.n)
        self.bar.set_postfix(
            epoch=f"{event['epoch']}/{event['epochs']}",
            loss=f"{event['loss']:.3f}" if event["loss"] is not None else "-",
            acc=f"{event['acc']:.3f}",
            img_s=f"{event['images_per_s']:.0f}",
        )

    def _write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def _close_steps(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self._close_steps()
        if self.grid is not None:
            self.grid.close()
            self.grid = None
        self.grid_total = 0


def duration(seconds: float) -> str:
    """``75`` -> ``1 min 15 s``; ``None`` or NaN -> ``?``."""
    if seconds is None or seconds != seconds:
        return "?"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"
