"""Reader of the idx format of MNIST and Fashion-MNIST (gzip-compressed or plain)."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from deepobs.errors import DataError

# Type codes of the idx header (third byte of the magic number).
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an idx file (``.gz`` or not) into an array of the shape its header gives.

    Raises DataError naming the file if it is truncated or not in the idx format.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                data = stream.read()
        else:
            data = path.read_bytes()
    except (EOFError, OSError, zlib.error) as error:
        raise DataError(f"corrupt or truncated data file {path}: {error}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"corrupt data file {path}: not in the idx format (bad magic number)")
    ndim = data[3]
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"corrupt or truncated data file {path}: incomplete idx header")
    shape = struct.unpack(">" + "I" * ndim, data[4:header_size])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header_size != expected:
        raise DataError(
            f"corrupt or truncated data file {path}: {len(data) - header_size:,} data bytes, "
            f"its header {tuple(shape)} needs {expected:,}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)


def write_idx(path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as an idx file, gzip-compressed if ``path`` ends in .gz."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + array.tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as stream:
            stream.write(payload)
    else:
        path.write_bytes(payload)


__all__ = ["read_idx", "write_idx"]
