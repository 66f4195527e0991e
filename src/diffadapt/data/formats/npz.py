"""NumPy archives: ``x`` and ``y`` (one split), or ``x_train``/``y_train``, ``x_val``, ``x_test`` (splits).

``x`` is (N, H, W) or (N, H, W, 1|3) pixels under the pixel rule of ``checks.py`` (uint8 as is; floats
finite and in [0, 1] or [0, 255]; other integers in 0..255); ``y`` is (N,) or (N, 1) whole numbers 0..9.
Each array's header is read before the array: object arrays (pickles, which could run code), strings,
records and arrays declaring more than ``checks.MAX_ARRAY_BYTES`` are refused without being loaded.
"""

from __future__ import annotations

import tokenize
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from diffadapt.data.formats.checks import as_nhwc, check_array_bytes, check_labels, describe_dtype, label_vector, opened
from diffadapt.data.types import DigitSet
from diffadapt.errors import InputError

# Everything numpy and zipfile raise for a damaged archive or member: NotImplementedError for an unknown
# compression method, RuntimeError for an encrypted member, zlib.error for a damaged deflate stream, and
# tokenize.TokenError / SyntaxError from numpy's parser of the .npy header (a Python dict literal).
_DAMAGED = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, KeyError,
            tokenize.TokenError, SyntaxError)


def read_npz(path: str | Path, domain: str) -> dict[str, DigitSet]:
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    # The file is opened here, not by np.load: numpy leaks its own handle when a file that starts like a zip
    # is none (a ResourceWarning), and a handle we hold is closed whatever happens.
    with opened(path) as handle:
        return _read_archive(handle, path, domain)


def _read_archive(handle, path: Path, domain: str) -> dict[str, DigitSet]:
    try:
        archive = np.load(handle, allow_pickle=False)
    except _DAMAGED as exc:
        raise InputError(f"not a readable .npz file ({exc})", path) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise InputError("holds a single array (.npy), not an .npz archive of named arrays", path)
    with archive:
        keys = set(archive.files)
        pairs: dict[str, tuple[str, str]] = {}
        if {"x", "y"} <= keys:
            pairs["train"] = ("x", "y")
        for split in ("train", "val", "test"):
            if {f"x_{split}", f"y_{split}"} <= keys:
                pairs[split] = (f"x_{split}", f"y_{split}")
        if not pairs:
            found = ", ".join(sorted(keys)[:10]) + (", ..." if len(keys) > 10 else "")
            raise InputError(f"npz must hold 'x' and 'y' or 'x_train' and 'y_train' (found {found or 'nothing'})", path)
        splits = {}
        for split, (xk, yk) in pairs.items():
            images = as_nhwc(_load_array(archive, xk, path), path, f"array {xk!r}")
            labels = label_vector(_load_array(archive, yk, path), len(images), path, f"array {yk!r}")
            splits[split] = DigitSet(images, check_labels(labels, path, what=f"array {yk!r}"), domain)
    return splits


def _load_array(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """One member, its header checked first (see the module docstring)."""
    member = key + ".npy"
    try:
        with archive.zip.open(member) as handle:
            version = npy_format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = npy_format.read_array_header_2_0(handle)
            else:  # version 3.0 exists only for record arrays with non-ASCII field names
                raise InputError(f"array {key!r}: .npy format version {version[0]}.{version[1]} is not supported", path)
    except InputError:
        raise
    except _DAMAGED as exc:
        raise InputError(f"array {key!r} is damaged or not a .npy array ({type(exc).__name__}: {exc})", path) from None
    if dtype.kind not in "biuf" or dtype.fields is not None or dtype.subdtype is not None:
        raise InputError(f"array {key!r} holds {describe_dtype(dtype)}; expected numbers", path)
    check_array_bytes(shape, dtype.itemsize, path, f"array {key!r}")
    try:
        array = archive[key]
    except _DAMAGED as exc:
        raise InputError(f"array {key!r} is damaged ({type(exc).__name__}: {exc})", path) from None
    if not isinstance(array, np.ndarray):  # defensive: numpy returns raw bytes for a member that is no .npy
        raise InputError(f"array {key!r} is not a .npy array", path)
    return array

