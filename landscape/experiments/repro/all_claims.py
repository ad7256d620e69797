"""Several claims in one command (``landscape repro all``, or ``landscape repro A,B``): the
claims side by side on the executor, each an independent chain (its runs, then its
analysis) that runs where it is sent with the executor's threads. A claim's lone stretches
(a source, a probe over its runs) then overlap another claim's work, which a grid spread
over workers cannot do. A run two claims share (the pair's source, which most start from)
trains once, under its lock, while the other claim waits for it; each claim writes
``OUT/NAME.h5`` as ``landscape repro NAME`` does, bit-identical to it run serially with the
worker's threads (its runs and its analysis alike)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from finetune.errors import ConfigError
from landscape.experiments.options import ReproOptions, dry_run
from landscape.experiments.repro import ClaimResult, claims, find_claim, read_claim, run_claim

ALL = "all"  # the name `landscape repro` takes for every claim


def claim_names(text: str) -> list[str]:
    """The claims ``landscape repro`` names: ``all``, or names separated by commas (each
    checked, once each, in the order given)."""
    if text == ALL:
        return list(claims())
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    for name in names:
        find_claim(name)
    return names


@dataclass(frozen=True)
class _Claim:
    """One claim of ``run_claims``, as a call of ``options.map``."""

    options: ReproOptions
    out: Path

    def __call__(self, name: str) -> ClaimResult:
        return run_claim(name, self.options, self.out)


def longest_first(names: list[str], out: Path) -> list[str]:
    """``names`` in the order to start them: by the seconds their file in ``out`` records,
    longest first, so that no long claim starts last (those without a file first, in
    ``names``' order)."""

    def recorded(name: str) -> float:
        path = out / f"{name}.h5"
        return read_claim(path)[2] if path.exists() else float("inf")

    return sorted(names, key=recorded, reverse=True)


def check_claims(names: Sequence[str], options: ReproOptions) -> None:
    """Each claim's dry run (seconds, nothing trained or written), so that options one of
    the claims cannot take (a number of targets in ``--data``) fail, naming the claim,
    before any claim trains."""
    for name in names:
        try:
            dry_run(find_claim(name).run, options)
        except ConfigError as err:
            raise ConfigError(f"{name}: {err}") from None


def run_claims(
    names: Sequence[str],
    options: ReproOptions,
    out: str | Path,
    done: Callable[[str, ClaimResult], None] | None = None,
) -> dict[str, ClaimResult]:
    """The claims ``names`` run side by side on the executor and written into ``out``
    (``OUT/NAME.h5``), ``done(name, result)`` as each finishes; the results by name, in the
    order of ``names``. Options a claim cannot take fail before any trains."""
    check_claims(names, options)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    order = longest_first(list(names), out)
    results = options.map(_Claim(options.worker(), out), order, done)
    by_name = dict(zip(order, results))
    return {name: by_name[name] for name in names}
