"""The IDX file format of MNIST and Fashion-MNIST (LeCun et al.): a 4-byte magic number
(two zero bytes, a type code, the number of dimensions), one big-endian uint32 per
dimension, then the values in C order. Files may be gzip-compressed."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from finetune.errors import DatasetMissingError

TYPE_CODES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> np.ndarray:
    """The array stored in the IDX file ``path`` (``.gz`` read through gzip)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as exc:
        raise DatasetMissingError(f"{path}: unreadable IDX file ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in TYPE_CODES:
        raise DatasetMissingError(f"{path}: not an IDX file (bad magic number)")
    dtype, ndim = TYPE_CODES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetMissingError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    count = int(np.prod(shape)) if shape else 1
    if len(raw) != header + count * dtype.itemsize:
        raise DatasetMissingError(
            f"{path}: IDX header says shape {shape} but the file holds "
            f"{len(raw) - header} bytes of data"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))
