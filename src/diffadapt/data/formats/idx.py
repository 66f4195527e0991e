"""MNIST's IDX files (``train-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``), gzipped or not."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from diffadapt.data.formats.checks import check_labels
from diffadapt.data.types import DigitSet
from diffadapt.errors import InputError

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
PREFIXES = {"train": "train", "t10k": "test"}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read IDX file ({exc})", path) from None


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file -> uint8 array of its declared shape."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 8:
        raise InputError("IDX file is too short", path)
    magic = int.from_bytes(data[:4], "big")
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise InputError(f"not an IDX file of unsigned bytes (magic {magic:#010x})", path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise InputError(f"IDX file holds {len(data) - header} bytes of data, its header promises {expected}", path)
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


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
        splits[split] = DigitSet(images[:, :, :, None].copy(), check_labels(labels, labels_path), domain)
    if not splits:
        raise InputError("no MNIST IDX files (train-images-idx3-ubyte[.gz], t10k-...) found", root)
    return splits
