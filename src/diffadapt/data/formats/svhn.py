"""SVHN cropped digits as released: ``train_32x32.mat`` / ``test_32x32.mat`` / ``extra_32x32.mat``.

Each holds ``X`` (32, 32, 3, N) uint8 and ``y`` (N, 1) with 10 standing for the digit 0 (a 0 is read as 0
too, as some conversions write it). ``X`` of another type follows the pixel rule of ``checks.py``; ``y``
must be whole numbers (strings, cells and structs are errors). Files are MATLAB v5 (v7.3 files are HDF5 and
not supported). scipy's warnings about odd files are held back: the file is either read or refused.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from scipy.io import loadmat, whosmat

from diffadapt.data.formats.checks import check_array_bytes, check_image_shape, check_labels, label_vector, to_uint8
from diffadapt.data.types import DigitSet
from diffadapt.errors import InputError

SPLITS = ("train", "test", "extra")
# What 'X' may declare: the real extra_32x32.mat holds 1.63 GB of uint8; scipy holds a compressed array about
# three times over while reading it, so a few MB of zeros declaring more would take the machine's memory.
MAX_MAT_BYTES = 2 * 2**30
MAT_ITEM_BYTES = {"int8": 1, "uint8": 1, "logical": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "single": 4}  # others: 8


def read_svhn_mat(path: str | Path) -> DigitSet:
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, shape, kind in whosmat(path):  # declared sizes, read from the headers alone
                if name in ("X", "y"):
                    check_array_bytes(tuple(shape), MAT_ITEM_BYTES.get(kind, 8), path, f"'{name}'", MAX_MAT_BYTES)
            contents = loadmat(path, variable_names=("X", "y"))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - scipy raises several unrelated types for damaged files
        raise InputError(f"not a readable MATLAB v5 .mat file ({type(exc).__name__}: {exc})", path) from None
    if "X" not in contents or "y" not in contents:
        raise InputError(".mat file must hold arrays 'X' and 'y'", path)
    images, labels = np.asarray(contents["X"]), np.asarray(contents["y"])
    if images.ndim != 4 or images.shape[2] != 3:
        raise InputError(f"'X' must be (H, W, 3, N), got {images.shape}", path)
    images = np.transpose(images, (3, 0, 1, 2))
    check_image_shape(images.shape, path, "'X'")
    labels = label_vector(labels, len(images), path, "'y'")
    if labels.dtype.kind in "iuf":
        labels = np.where(labels == 10, 0, labels)
    labels = check_labels(labels, path, what="'y'")
    return DigitSet(np.ascontiguousarray(to_uint8(images, path, "'X'")), labels, "svhn")


def is_svhn_folder(root: Path) -> bool:
    return any((root / f"{s}_32x32.mat").is_file() for s in SPLITS)


def read_svhn_folder(root: Path) -> dict[str, DigitSet]:
    return {s: read_svhn_mat(root / f"{s}_32x32.mat") for s in SPLITS if (root / f"{s}_32x32.mat").is_file()}
