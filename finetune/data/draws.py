"""Random draws for a slice of a global batch: every augmentation draws for the whole global
batch and keeps its own rows, so a batch prepared in parts (one part per process under DDP)
gets exactly the randomness it would get prepared whole."""

from __future__ import annotations

Part = tuple[int, int]  # (offset of this part's first row, global batch size)


def global_rows(n: int, part: Part | None) -> tuple[int, slice]:
    """(how many rows to draw, which of them this part of ``n`` images uses): rows
    ``[offset, offset + n)`` of ``total`` draws for ``part = (offset, total)``, all ``n`` of
    ``n`` draws when ``part`` is None."""
    if part is None:
        return n, slice(0, n)
    offset, total = part
    if offset < 0 or offset + n > total:
        raise ValueError(f"rows [{offset}, {offset + n}) do not lie in a batch of {total}")
    return total, slice(offset, offset + n)
