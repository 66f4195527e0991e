"""SVHN cropped digits as released: ``train_32x32.mat`` / ``test_32x32.mat`` / ``extra_32x32.mat``.

Each holds ``X`` (32, 32, 3, N) uint8 and ``y`` (N, 1) with 10 standing for the digit 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import loadmat

from diffadapt.data.formats.checks import check_labels
from diffadapt.data.types import DigitSet
from diffadapt.errors import InputError

SPLITS = ("train", "test", "extra")


def read_svhn_mat(path: str | Path) -> DigitSet:
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        contents = loadmat(path)
    except Exception as exc:  # scipy raises several unrelated types for damaged files
        raise InputError(f"not a readable .mat file ({type(exc).__name__}: {exc})", path) from None
    if "X" not in contents or "y" not in contents:
        found = ", ".join(k for k in contents if not k.startswith("__")) or "nothing"
        raise InputError(f".mat file must hold arrays 'X' and 'y' (found {found})", path)
    images, labels = np.asarray(contents["X"]), np.asarray(contents["y"]).reshape(-1)
    if images.ndim != 4 or images.shape[2] != 3:
        raise InputError(f"'X' must be (H, W, 3, N), got {images.shape}", path)
    if images.shape[3] != len(labels):
        raise InputError(f"'X' holds {images.shape[3]} images but 'y' {len(labels)} labels", path)
    labels = np.where(labels == 10, 0, labels)
    images = np.ascontiguousarray(np.transpose(images, (3, 0, 1, 2))).astype(np.uint8)
    return DigitSet(images, check_labels(labels, path), "svhn")


def is_svhn_folder(root: Path) -> bool:
    return any((root / f"{s}_32x32.mat").is_file() for s in SPLITS)


def read_svhn_folder(root: Path) -> dict[str, DigitSet]:
    return {s: read_svhn_mat(root / f"{s}_32x32.mat") for s in SPLITS if (root / f"{s}_32x32.mat").is_file()}
