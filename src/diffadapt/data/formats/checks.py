"""Shared checks of labels, pixel values, sizes and paths read from files.

The pixel-value rule, one for every reader whose format does not fix the range itself:

- uint8: as is. bool: False -> 0, True -> 255 (as PIL reads 1-bit images).
- other integers: must hold 0..255 (16-bit data is ambiguous in an array: scale it to 8 bits first).
- floats: must be finite (one NaN would otherwise turn the whole image black); values in [0, 1] are
  scaled by 255, values in [0, 255] are taken as they are, both rounded; anything else is an error.
- anything else (complex, strings, records, objects): an error.

Nothing is clipped silently: a value outside the rule's range is an error naming the file and array.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from diffadapt.data.types import NUM_CLASSES
from diffadapt.errors import InputError

# The largest array a reader materialises (declared size, checked before reading): MNIST-M's 59,001
# training images are 139 MB, EMNIST ByClass, the largest IDX set there is, 0.55 GB. A header that
# declares more is damaged or hostile, and allocating it first would take the machine down.
MAX_ARRAY_BYTES = 4 * 2**30

# Floats read from files carry rounding noise (1.0000001): that much outside a range still counts as inside.
_FLOAT_SLACK = 1e-6
_CHUNK_VALUES = 1 << 23  # float pixels converted at a time (64 MB of float64)

_WHOLE_NUMBER = re.compile(r"([+-]?)([0-9]+)")


def shorten(text: str, limit: int = 40) -> str:
    """``text`` cut to ``limit`` characters for an error message (a csv cell can be a megabyte long)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_label(text: str, path: str | Path, row: int) -> int:
    """One label written as text: a whole number 0..9 in ASCII digits, else an error naming the row.

    ``int()`` alone would accept ``1_0`` (10), non-ASCII digits and 10,000-digit numbers.
    """
    match = _WHOLE_NUMBER.fullmatch(text)
    if not match:
        raise InputError(f"label {shorten(text)!r} is not a whole number", path, row=row)
    sign, digits = match.group(1), match.group(2).lstrip("0") or "0"
    if len(digits) > 1 or (sign == "-" and digits != "0"):
        raise InputError(f"label {shorten(text)} is outside 0..{NUM_CLASSES - 1}", path, row=row)
    return int(digits)


def check_labels(labels: np.ndarray, path: str | Path, first_row: int = 1, what: str = "labels") -> np.ndarray:
    """Labels must be whole numbers in 0..9; the error names the first bad row (1-based, after any header).

    Integer and float arrays are accepted (a float must be a whole number); strings, booleans and objects are not.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise InputError(f"{what} must be one-dimensional, got shape {labels.shape}", path)
    if labels.dtype.kind not in "iuf":
        raise InputError(f"{what} must be whole numbers, found {describe_dtype(labels.dtype)}", path)
    with np.errstate(invalid="ignore"):  # NaN compares False: it is caught by the isfinite test, not warned about
        bad = np.flatnonzero(~np.isfinite(labels) | (labels < 0) | (labels >= NUM_CLASSES) | (labels != np.round(labels)))
    if len(bad):
        value = labels[bad[0]]
        problem = "is outside" if np.isfinite(value) and value == np.round(value) else "is not a whole number in"
        raise InputError(f"label {value} {problem} 0..{NUM_CLASSES - 1}", path, row=int(bad[0]) + first_row)
    return labels.astype(np.int64)


def label_vector(labels: np.ndarray, count: int, path: str | Path, what: str) -> np.ndarray:
    """Labels stored as (N,), (N, 1) or (1, N) -> (N,); any other shape is an error, never a silent flatten."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iuf":
        raise InputError(f"{what} must be whole numbers, found {describe_dtype(labels.dtype)}", path)
    if labels.ndim == 2 and 1 in labels.shape:
        labels = labels.reshape(-1)
    if labels.ndim != 1:
        raise InputError(f"{what} must have shape (N,) or (N, 1), got {labels.shape}", path)
    if len(labels) != count:
        raise InputError(f"{count} images but {len(labels)} labels in {what}", path)
    return labels


def describe_dtype(dtype: np.dtype) -> str:
    names = {"U": "strings", "S": "byte strings", "O": "Python objects", "V": "records", "c": "complex numbers",
             "b": "booleans", "M": "dates", "m": "time spans"}
    return f"{names.get(dtype.kind, 'values')} ({dtype})"


def check_array_bytes(shape: tuple[int, ...], itemsize: int, path: str | Path, what: str, limit: int | None = None) -> None:
    """Refuse a declared array larger than ``limit`` bytes (default :data:`MAX_ARRAY_BYTES`) before it is
    allocated (exact integers, no int64 overflow: a header declaring 2**31 x 2**31 x 2**31 must not multiply to 0)."""
    limit = MAX_ARRAY_BYTES if limit is None else limit
    size = itemsize
    for side in shape:
        size *= int(side)
    if size > limit:
        dims = "x".join(str(int(s)) for s in shape)
        raise InputError(f"{what} declares a {dims} array ({size / 2**30:.3g} GiB), more than the {limit / 2**30:g} GiB limit", path)


def to_uint8(values: np.ndarray, path: str | Path, what: str = "images") -> np.ndarray:
    """Pixel values -> uint8 by the module's rule; an error names ``path`` and ``what`` (the array)."""
    values = np.asarray(values)
    kind = values.dtype.kind
    if kind == "u" and values.dtype.itemsize == 1:
        return values
    if kind == "b":
        return values.astype(np.uint8) * np.uint8(255)
    if kind not in "iuf":
        raise InputError(f"{what} must hold numbers, found {describe_dtype(values.dtype)}", path)
    if values.size == 0:
        return values.astype(np.uint8)
    if kind == "f":
        return _float_to_uint8(values, path, what)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > 255:
        raise InputError(f"{what}: values from {low} to {high}; integer pixels must lie in 0..255 (scale 16-bit data to 8 bits)", path)
    return values.astype(np.uint8)


def _float_to_uint8(values: np.ndarray, path: str | Path, what: str) -> np.ndarray:
    """Float pixels in [0, 1] or [0, 255] -> uint8, a slice of rows at a time: the float temporaries stay near
    _CHUNK_VALUES values, not copies of a file's whole array."""
    rows = max(1, _CHUNK_VALUES // max(1, values.size // len(values))) if values.ndim else 1
    parts = [values[i : i + rows] for i in range(0, len(values), rows)] if values.ndim else [values]
    low, high = math.inf, -math.inf
    for part in parts:
        if not bool(np.isfinite(part).all()):
            raise InputError(f"{what}: NaN or infinite values (pixels must be finite numbers)", path)
        low, high = min(low, float(part.min())), max(high, float(part.max()))
    if low >= -_FLOAT_SLACK and high <= 1.0 + _FLOAT_SLACK:
        top, scale = 1.0, 255.0
    elif low >= -_FLOAT_SLACK * 255 and high <= 255.0 * (1.0 + _FLOAT_SLACK):
        top, scale = 255.0, 1.0
    else:
        raise InputError(f"{what}: values from {low:g} to {high:g}; float pixels must lie in [0, 1] or [0, 255]", path)
    if not values.ndim:
        return np.round(np.clip(values, 0.0, top) * scale).astype(np.uint8)
    out = np.empty(values.shape, dtype=np.uint8)
    for start, part in zip(range(0, len(values), rows), parts):
        out[start : start + rows] = np.round(np.clip(part, 0.0, top) * scale)
    return out


def as_nhwc(images: np.ndarray, path: str | Path, what: str = "images") -> np.ndarray:
    """(N, H, W) or (N, H, W, 1|3) -> (N, H, W, C) uint8 by the module's pixel rule; anything else is an
    error naming ``path`` and the array ``what``."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, :, :, None]
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise InputError(f"{what}: expected images of shape (N, H, W) or (N, H, W, 1|3), got {images.shape}", path)
    check_image_shape(images.shape, path, what)
    return np.ascontiguousarray(to_uint8(images, path, what))


def check_image_shape(shape: tuple[int, ...], path: str | Path, what: str = "images") -> None:
    """At least one image, and every side at least one pixel: an empty array is a damaged file, not data."""
    if shape[0] == 0:
        raise InputError(f"{what}: no images (the array is empty)", path)
    if min(shape[1:3]) == 0:
        raise InputError(f"{what}: images of size {shape[1]}x{shape[2]}", path)


def resolves_inside(path: Path, folder: Path, resolved_root: Path) -> bool:
    """Whether ``path`` (symlinks followed) lies inside the folder whose resolved form is ``resolved_root``.

    ``folder`` is a folder already known to lie inside it (usually the root itself): a plain entry of
    ``folder`` that is no symlink costs one lstat; anything else (``..``, an absolute name, a symlink, a
    subfolder) is resolved in full. A name that cannot be resolved (a NUL byte, a symlink loop) is outside.
    """
    try:
        if "\x00" in str(path):
            return False
        if path.parent == folder and path.name not in ("", ".", "..") and not path.is_symlink():
            return True
        return path.resolve().is_relative_to(resolved_root)
    except (OSError, RuntimeError, ValueError):
        return False


def require_inside(path: Path, folder: Path, resolved_root: Path) -> Path:
    """``path``, a file of ``folder`` (resolved: ``resolved_root``), unless it is a link leading out of it."""
    if not resolves_inside(path, folder, resolved_root):
        raise InputError(f"is a link to a file outside {folder}; only files inside the folder are read", path)
    return path


def resolved(root: Path) -> Path:
    """``root`` with symlinks resolved, or an error naming it (a symlink loop, an unreadable parent)."""
    try:
        return root.resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise InputError(f"cannot resolve the folder ({exc})", root) from None


@contextlib.contextmanager
def opened(path: Path) -> Iterator[BinaryIO]:
    """``path`` open for binary reading, closed on leaving; a failure to open (permissions, a folder) is an
    error naming it. Errors while reading are the caller's to word."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below; only open's own OSError is caught here
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror or exc})", path) from None
    with handle:
        yield handle
