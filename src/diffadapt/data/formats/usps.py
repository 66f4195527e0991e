"""USPS handwritten digits in their two common files.

- ``usps.h5`` (the widely shared HDF5 conversion): groups ``train`` and ``test``, each with datasets
  ``data`` (N, 256) numbers in [0, 1] and ``target`` (N,) digits.
- LIBSVM's ``usps.bz2`` / ``usps.t.bz2`` (or unpacked ``usps`` / ``usps.t``): UTF-8 text lines
  ``label index:value ...``, values in [-1, 1], labels 1..10 standing for digits 0..9, indices 1..256
  (each at most once; a missing index is 0, mid-gray).
Images are 16x16 gray, white digit on black.

Both formats fix their value range, so a value outside it (or NaN) is an error naming the file (and row),
not a clipped guess. Sizes are checked before reading: an HDF5 dataset is checked on its declared shape,
a LIBSVM file on its unpacked length (bzip2 packs a run of zeros 10,000-fold and more).
"""

from __future__ import annotations

import bz2
import math
import re
from pathlib import Path

import h5py
import numpy as np

from diffadapt.data.formats.checks import check_array_bytes, check_labels, describe_dtype, label_vector, shorten
from diffadapt.data.types import DigitSet
from diffadapt.errors import InputError
from diffadapt.io import decode_utf8

SIDE = 16
MAX_TEXT_BYTES = 256 * 2**20  # usps.bz2 unpacks to 25 MB
MAX_ROWS = 1_000_000  # USPS has 9,298 images
MAX_LINES = 2 * MAX_ROWS  # blank lines included
_SLACK = 1e-6  # values written with six decimals: rounding noise beyond the range is still inside

# h5py and the HDF5 library report damaged files as OSError, KeyError (a broken link), ValueError,
# TypeError (an unreadable type) or RuntimeError.
_H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError)


def read_usps_h5(path: str | Path) -> dict[str, DigitSet]:
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        handle = h5py.File(path, "r")
    except _H5_ERRORS as exc:
        raise InputError(f"not a readable HDF5 file ({exc})", path) from None
    splits: dict[str, DigitSet] = {}
    with handle:
        for split in ("train", "test"):
            try:
                if split not in handle:
                    continue
                data, target = _h5_split(handle, split, path)
            except InputError:
                raise
            except _H5_ERRORS as exc:
                raise InputError(f"{split}: damaged HDF5 data ({type(exc).__name__}: {exc})", path) from None
            splits[split] = _h5_digits(data, target, split, path)
    if not splits:
        raise InputError("HDF5 file has neither a 'train' nor a 'test' group", path)
    return splits


def _h5_split(handle: h5py.File, split: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    # Soft and external links, external raw storage and virtual datasets can all name other files; a data
    # file may only hold its own data (as the CSV and MNIST-M readers insist).
    if not isinstance(handle.get(split, getlink=True), h5py.HardLink):
        raise InputError(f"{split!r} is a link; usps.h5 must hold its own data", path)
    group = handle[split]
    if not isinstance(group, h5py.Group):
        raise InputError(f"{split!r} must be a group holding datasets 'data' and 'target', found a {type(group).__name__}", path)
    arrays = []
    for name in ("data", "target"):
        if name not in group:
            raise InputError(f"group {split!r} needs 'data' and 'target' arrays", path)
        if not isinstance(group.get(name, getlink=True), h5py.HardLink):
            raise InputError(f"{split}/{name} is a link; usps.h5 must hold its own data", path)
        dataset = group[name]
        if not isinstance(dataset, h5py.Dataset):
            raise InputError(f"{split}/{name} must be a dataset, found a {type(dataset).__name__}", path)
        if dataset.external or dataset.is_virtual:
            raise InputError(f"{split}/{name} keeps its values in other files; usps.h5 must hold its own data", path)
        if dataset.dtype.kind not in "biuf" or dataset.dtype.fields is not None:
            raise InputError(f"{split}/{name} holds {describe_dtype(dataset.dtype)}; expected numbers", path)
        if dataset.shape is None:  # an HDF5 "null" dataspace: no values at all
            raise InputError(f"{split}/{name} is empty", path)
        check_array_bytes(dataset.shape, 8, path, f"{split}/{name}")
        arrays.append(dataset[()])
    return arrays[0], arrays[1]


def _h5_digits(data: np.ndarray, target: np.ndarray, split: str, path: Path) -> DigitSet:
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != SIDE * SIDE or len(data) == 0:
        raise InputError(f"{split}/data must be (N, 256) with N > 0, got {data.shape}", path)
    labels = label_vector(target, len(data), path, f"{split}/target")
    if not bool(np.isfinite(data).all()):
        raise InputError(f"{split}/data holds NaN or infinite values", path)
    low, high = float(data.min()), float(data.max())
    if low < -_SLACK or high > 1.0 + _SLACK:
        raise InputError(f"{split}/data holds values from {low:g} to {high:g}; usps.h5 pixels lie in [0, 1]", path)
    images = np.round(np.clip(data, 0.0, 1.0) * 255.0).astype(np.uint8).reshape(-1, SIDE, SIDE, 1)
    return DigitSet(images, check_labels(labels, path, what=f"{split}/target"), "usps")


_INDEX = re.compile(r"[0-9]+")
# A decimal number in ASCII: float() alone also takes "1_0", "nan", "infinity" and non-ASCII digits.
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _number(text: str, what: str) -> float:
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{what} {shorten(text)!r} is not a number")
    return float(text)


def _read_text(path: Path) -> str:
    opener = bz2.open if path.suffix == ".bz2" else open
    try:
        with opener(path, "rb") as handle:  # type: ignore[operator]
            data = handle.read(MAX_TEXT_BYTES + 1)
    except (OSError, EOFError, ValueError) as exc:  # a damaged bzip2 stream is an OSError
        raise InputError(f"cannot read LIBSVM file ({exc})", path) from None
    if len(data) > MAX_TEXT_BYTES:
        raise InputError(f"LIBSVM file unpacks to more than {MAX_TEXT_BYTES // 2**20} MiB; USPS is 25 MB", path)
    # Counted in the bytes, before any string is made: 255 million empty lines pack into a 206-byte .bz2, and
    # splitting them into a list took 2.7 GB before the file was refused for having no rows.
    if data.count(b"\n") > MAX_LINES:
        raise InputError(f"more than {MAX_LINES:,} lines; USPS has 9,298 rows", path)
    return decode_utf8(data, path)


def _parse_row(parts: list[str]) -> tuple[int, np.ndarray]:
    """``label index:value ...`` -> (digit 0..9, (256,) uint8); ValueError says what is wrong."""
    label = _number(parts[0], "label")
    if not math.isfinite(label) or label != int(label):
        raise ValueError(f"label {shorten(parts[0])!r} is not a whole number")
    if not 1 <= label <= 10:
        raise ValueError(f"label {int(label)} is outside 1..10 (LIBSVM USPS labels digit d as d + 1)")
    values = np.zeros(SIDE * SIDE, dtype=np.float64)
    seen = np.zeros(SIDE * SIDE, dtype=bool)
    for item in parts[1:]:
        index, colon, value = item.partition(":")
        if not colon or not _INDEX.fullmatch(index):
            raise ValueError(f"expected index:value, got {shorten(item)!r}")
        column = int(index) - 1 if len(index) <= 3 else -1
        if not 0 <= column < SIDE * SIDE:
            raise ValueError(f"feature index {shorten(index)} outside 1..256")
        if seen[column]:
            raise ValueError(f"feature index {index} appears twice")
        number = _number(value, "value")
        if not -1.0 - _SLACK <= number <= 1.0 + _SLACK:
            raise ValueError(f"value {shorten(value)} outside [-1, 1]")
        values[column], seen[column] = number, True
    pixels = np.round((np.clip(values, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return int(label) - 1, pixels


def read_usps_libsvm(path: str | Path) -> DigitSet:
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    rows: list[np.ndarray] = []
    labels: list[int] = []
    for row_number, line in enumerate(_read_text(path).split("\n"), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(rows) == MAX_ROWS:
            raise InputError(f"more than {MAX_ROWS:,} rows; USPS has 9,298", path, row=row_number)
        try:
            label, pixels = _parse_row(parts)
        except ValueError as exc:
            raise InputError(f"malformed LIBSVM line ({exc})", path, row=row_number) from None
        labels.append(label)
        rows.append(pixels)
    if not rows:
        raise InputError("LIBSVM file has no rows", path)
    return DigitSet(np.stack(rows).reshape(-1, SIDE, SIDE, 1), np.array(labels, dtype=np.int64), "usps")


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
