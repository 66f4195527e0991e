"""NumPy archives: ``x`` and ``y`` (one split), or ``x_train``/``y_train``, ``x_val``, ``x_test`` (splits)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from diffadapt.data.formats.checks import as_nhwc, check_labels
from diffadapt.data.types import DigitSet
from diffadapt.errors import InputError


def read_npz(path: str | Path, domain: str) -> dict[str, DigitSet]:
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found", path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"not a readable .npz file ({exc})", path) from None
    with archive:
        keys = set(archive.files)
        pairs: dict[str, tuple[str, str]] = {}
        if {"x", "y"} <= keys:
            pairs["train"] = ("x", "y")
        for split in ("train", "val", "test"):
            if {f"x_{split}", f"y_{split}"} <= keys:
                pairs[split] = (f"x_{split}", f"y_{split}")
        if not pairs:
            raise InputError(f"npz must hold 'x' and 'y' or 'x_train' and 'y_train' (found {sorted(keys)})", path)
        splits = {}
        for split, (xk, yk) in pairs.items():
            try:
                images, labels = archive[xk], archive[yk]
            except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
                raise InputError(f"array {xk!r} or {yk!r} is damaged ({exc})", path) from None
            images = as_nhwc(images, path)
            if len(images) != len(labels):
                raise InputError(f"{xk} holds {len(images)} images but {yk} {len(labels)} labels", path)
            splits[split] = DigitSet(images, check_labels(labels.reshape(-1), path), domain)
    return splits
