"""MNIST's IDX files (``train-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``), gzipped or not.

An IDX file is a big-endian header (magic ``0x0000 08 NN``: unsigned bytes, NN dimensions; then NN 32-bit
sizes) followed by exactly the bytes the sizes multiply to. Gzip is recognised by its magic bytes, not the
file name. The header is read first and its declared size checked (exactly, and against the limit of
``checks.MAX_ARRAY_BYTES``) before the data is read, so a damaged header or a gzip "bomb" cannot make the
reader allocate or unpack more than the header declares, which is at most that limit (the data is read into
one growing buffer and used in place).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from diffadapt.data.formats.checks import check_array_bytes, check_image_shape, check_labels, opened
from diffadapt.data.types import DigitSet
from diffadapt.errors import InputError

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
PREFIXES = {"train": "train", "t10k": "test"}


GZIP_MAGIC = b"\x1f\x8b"


def _read_exactly(handle, size: int, path: Path) -> bytes:
    try:
        return handle.read(size)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError; a damaged deflate stream a zlib.error
        raise InputError(f"cannot read IDX file ({type(exc).__name__}: {exc})", path) from None


def _read_upto(handle, size: int, path: Path) -> bytearray:
    """Up to ``size`` bytes, read in chunks: one read(size) would reserve ``size`` bytes however short the file.
    They grow one buffer (joining a list of chunks held the data twice, and a gzip file declaring a large
    array took 2.3x its size)."""
    data = bytearray()
    while size > 0:
        chunk = _read_exactly(handle, min(size, 16 * 2**20), path)
        if not chunk:
            break
        data += chunk
        size -= len(chunk)
    return data


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file -> uint8 array of its declared shape."""
    path = Path(path)
    if not path.is_file():
        raise InputError("IDX file not found", path)
    with opened(path) as raw:
        compressed = _read_exactly(raw, 2, path) == GZIP_MAGIC
        raw.seek(0)
        handle = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
        with handle:
            head = _read_exactly(handle, 4, path)
            if len(head) < 4:
                raise InputError("IDX file is too short", path)
            magic = int.from_bytes(head, "big")
            if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
                raise InputError(f"not an IDX file of unsigned bytes (magic {magic:#010x})", path)
            ndim = magic & 0xFF
            sizes = _read_exactly(handle, 4 * ndim, path)
            if len(sizes) < 4 * ndim:
                raise InputError("IDX file is too short", path)
            shape = tuple(int.from_bytes(sizes[4 * i : 4 * i + 4], "big") for i in range(ndim))
            check_array_bytes(shape, 1, path, "IDX header")
            expected = 1
            for side in shape:
                expected *= side  # Python integers: exact, where np.prod would overflow int64 and wrap
            data = _read_upto(handle, expected + 1, path)
    if len(data) != expected:
        found = f"{len(data)}" if len(data) <= expected else "more"
        raise InputError(f"IDX file holds {found} bytes of data, its header promises {expected}", path)
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def _find(root: Path, prefix: str, kind: str) -> Path | None:
    for name in (f"{prefix}-{kind}-ubyte", f"{prefix}-{kind}.idx{kind[-1]}-ubyte"):
        for suffix in ("", ".gz"):
            path = root / (name + suffix)
            if path.is_file():
                return path
    return None


def is_idx_folder(root: Path) -> bool:
    return any(_find(root, p, "images-idx3") for p in PREFIXES)


def read_idx_folder(root: str | Path, domain: str = "mnist") -> dict[str, DigitSet]:
    root = Path(root)
    splits: dict[str, DigitSet] = {}
    for prefix, split in PREFIXES.items():
        images_path = _find(root, prefix, "images-idx3")
        if images_path is None:
            continue
        labels_path = _find(root, prefix, "labels-idx1")
        if labels_path is None:
            raise InputError(f"{images_path.name} has no matching {prefix}-labels-idx1-ubyte file", root)
        images = read_idx(images_path)
        labels = read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1:
            raise InputError("IDX images must be 3-D and labels 1-D", images_path)
        if len(images) != len(labels):
            raise InputError(f"{len(images)} images but {len(labels)} labels in {labels_path.name}", images_path)
        check_image_shape(images.shape, images_path, "IDX images")
        splits[split] = DigitSet(images.reshape(*images.shape, 1), check_labels(labels, labels_path), domain)  # a view, no copy
    if not splits:
        raise InputError("no MNIST IDX files (train-images-idx3-ubyte[.gz], t10k-...) found", root)
    return splits
