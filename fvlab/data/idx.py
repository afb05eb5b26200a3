"""Reader for the IDX format (LeCun's MNIST format, also used by Fashion-MNIST).

An IDX file is: two zero bytes, a type code (0x08 = uint8), the number of dimensions ``n``, then
``n`` big-endian uint32 sizes, then the data in C order. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fvlab.errors import CorruptFileError, DatasetNotFoundError

UINT8_CODE = 0x08


@dataclass(frozen=True)
class IdxHeader:
    """Shape of an IDX file; ``shape[0]`` is the number of records."""

    shape: tuple[int, ...]

    @property
    def record_shape(self) -> tuple[int, ...]:
        return self.shape[1:]

    @property
    def record_bytes(self) -> int:
        return int(np.prod(self.record_shape, dtype=np.int64)) if self.record_shape else 1


def _open(path: Path) -> BinaryIO:
    if not path.exists():
        raise DatasetNotFoundError(f"IDX file not found: {path}")
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115


def _read_exact(stream: BinaryIO, n: int, path: Path, what: str) -> bytes:
    try:
        data = stream.read(n)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise CorruptFileError(
            f"{path} is not a readable IDX file ({exc}); re-download or reinstall it"
        ) from exc
    if len(data) != n:
        raise CorruptFileError(
            f"{path} is truncated: expected {n} more bytes of {what}, got {len(data)}; "
            "re-download or reinstall it"
        )
    return data


def _read_header(stream: BinaryIO, path: Path, expected_ndim: int | None) -> IdxHeader:
    magic = _read_exact(stream, 4, path, "the magic number")
    if magic[0] != 0 or magic[1] != 0 or magic[2] != UINT8_CODE:
        raise CorruptFileError(
            f"{path} has magic number 0x{magic.hex()} but an unsigned-byte IDX file starts with "
            f"0x0000080N (N = number of dimensions); the file is corrupt or not IDX"
        )
    ndim = magic[3]
    if expected_ndim is not None and ndim != expected_ndim:
        raise CorruptFileError(
            f"{path} has {ndim} dimensions (magic 0x{magic.hex()}), expected {expected_ndim}"
        )
    shape = struct.unpack(">" + "I" * ndim, _read_exact(stream, 4 * ndim, path, "the sizes"))
    return IdxHeader(tuple(int(s) for s in shape))


def read_idx_header(path: str | Path, expected_ndim: int | None = None) -> IdxHeader:
    """Read only the header of an IDX file."""
    path = Path(path)
    with _open(path) as stream:
        return _read_header(stream, path, expected_ndim)


def iter_idx(
    path: str | Path,
    chunk: int,
    start: int = 0,
    stop: int | None = None,
    expected_ndim: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield records ``start:stop`` of an IDX file in arrays of at most ``chunk`` records.

    Reads sequentially, so memory is bounded by ``chunk`` records whatever the file size.
    """
    path = Path(path)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    with _open(path) as stream:
        header = _read_header(stream, path, expected_ndim)
        count = header.shape[0]
        stop = count if stop is None else min(stop, count)
        if not 0 <= start <= stop:
            raise ValueError(f"invalid record range {start}:{stop} for {count} records in {path}")
        skip = start * header.record_bytes
        while skip > 0:
            skip -= len(_read_exact(stream, min(skip, 1 << 24), path, "records"))
        position = start
        while position < stop:
            n = min(chunk, stop - position)
            raw = _read_exact(stream, n * header.record_bytes, path, "records")
            yield np.frombuffer(raw, dtype=np.uint8).reshape((n, *header.record_shape))
            position += n


def read_idx(path: str | Path, expected_ndim: int | None = None) -> np.ndarray:
    """Read a whole IDX file into memory, checking that no trailing bytes follow the data."""
    path = Path(path)
    with _open(path) as stream:
        header = _read_header(stream, path, expected_ndim)
        total = header.shape[0] * header.record_bytes
        raw = _read_exact(stream, total, path, "records")
        try:
            trailing = stream.read(1)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise CorruptFileError(f"{path} is not a readable IDX file ({exc})") from exc
        if trailing:
            raise CorruptFileError(
                f"{path} has more bytes than its header declares {header.shape}; it is corrupt"
            )
    return np.frombuffer(raw, dtype=np.uint8).reshape(header.shape)
