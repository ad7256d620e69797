"""What the families of plots share: reading string datasets and fitting long titles."""

from __future__ import annotations

import textwrap

import h5py


def strings(dataset: h5py.Dataset) -> list[str]:
    """A string dataset as a list of ``str`` (h5py reads variable-length strings as bytes)."""
    return [s.decode() if isinstance(s, bytes) else str(s) for s in dataset[()]]


def wrapped(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters, so it never runs past
    the figure's edge."""
    return textwrap.fill(text, width)
