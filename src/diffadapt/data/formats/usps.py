"""USPS handwritten digits in their two common files.

- ``usps.h5`` (the widely shared HDF5 conversion): groups ``train`` and ``test``, each with ``data``
  (N, 256) floats in [0, 1] and ``target`` (N,) digits.
- LIBSVM's ``usps.bz2`` / ``usps.t.bz2``: text lines ``label index:value ...``, values in [-1, 1],
  labels 1..10 standing for digits 0..9.
Images are 16x16 gray, white digit on black.
"""

from __future__ import annotations

import bz2
from pathlib import Path

import h5py
import numpy as np

from diffadapt.data.formats.checks import check_labels
from diffadapt.data.types import DigitSet
from diffadapt.errors import InputError

SIDE = 16


def read_usps_h5(path: str | Path) -> dict[str, DigitSet]:
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"not a readable HDF5 file ({exc})", path) from None
    splits: dict[str, DigitSet] = {}
    with handle:
        for split in ("train", "test"):
            if split not in handle:
                continue
            group = handle[split]
            if "data" not in group or "target" not in group:
                raise InputError(f"group {split!r} needs 'data' and 'target' arrays", path)
            data = np.asarray(group["data"], dtype=np.float64)
            target = np.asarray(group["target"])
            if data.ndim != 2 or data.shape[1] != SIDE * SIDE:
                raise InputError(f"{split}/data must be (N, 256), got {data.shape}", path)
            if len(data) != len(target):
                raise InputError(f"{split}: {len(data)} images but {len(target)} targets", path)
            images = np.round(np.clip(data, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(-1, SIDE, SIDE, 1)
            splits[split] = DigitSet(images, check_labels(target, path), "usps")
    if not splits:
        raise InputError("HDF5 file has neither a 'train' nor a 'test' group", path)
    return splits


def read_usps_libsvm(path: str | Path) -> DigitSet:
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        opener = bz2.open if path.suffix == ".bz2" else open
        with opener(path, "rt") as handle:  # type: ignore[operator]
            lines = handle.read().splitlines()
    except (OSError, EOFError, ValueError) as exc:
        raise InputError(f"cannot read LIBSVM file ({exc})", path) from None
    # Missing indices are zeros in LIBSVM's sparse format (mid-gray once mapped from [-1, 1]).
    values = np.zeros((len(lines), SIDE * SIDE), dtype=np.float64)
    labels = np.zeros(len(lines), dtype=np.int64)
    count = 0
    for row_number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            label = int(float(parts[0]))
            for item in parts[1:]:
                index, value = item.split(":")
                column = int(index) - 1
                if not 0 <= column < SIDE * SIDE:
                    raise ValueError(f"feature index {index} outside 1..256")
                values[count, column] = float(value)
        except ValueError as exc:
            raise InputError(f"malformed LIBSVM line ({exc})", path, row=row_number) from None
        if not 1 <= label <= 10:
            raise InputError(f"label {label} is outside 1..10 (LIBSVM USPS labels digit d as d + 1)", path, row=row_number)
        labels[count] = label - 1
        count += 1
    if count == 0:
        raise InputError("LIBSVM file has no rows", path)
    images = np.round((np.clip(values[:count], -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return DigitSet(images.reshape(-1, SIDE, SIDE, 1), labels[:count], "usps")


def read_usps_folder(root: Path) -> dict[str, DigitSet]:
    if (root / "usps.h5").is_file():
        return read_usps_h5(root / "usps.h5")
    splits = {}
    for name, split in (("usps.bz2", "train"), ("usps", "train"), ("usps.t.bz2", "test"), ("usps.t", "test")):
        if (root / name).is_file() and split not in splits:
            splits[split] = read_usps_libsvm(root / name)
    if not splits:
        raise InputError("no usps.h5 or usps.bz2 found", root)
    return splits


def is_usps_folder(root: Path) -> bool:
    return any((root / n).is_file() for n in ("usps.h5", "usps.bz2", "usps.t.bz2"))
