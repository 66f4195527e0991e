"""Shared checks of labels and arrays read from files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffadapt.data.types import NUM_CLASSES
from diffadapt.errors import InputError


def check_labels(labels: np.ndarray, path: str | Path, first_row: int = 1) -> np.ndarray:
    """Labels must be whole numbers in 0..9; the error names the first bad row (1-based, after any header)."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise InputError(f"labels must be one-dimensional, got shape {labels.shape}", path)
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES) | (labels != np.round(labels)))
    if len(bad):
        raise InputError(f"label {labels[bad[0]]} is outside 0..9", path, row=int(bad[0]) + first_row)
    return labels.astype(np.int64)


def as_nhwc(images: np.ndarray, path: str | Path) -> np.ndarray:
    """(N, H, W) or (N, H, W, 1|3) -> (N, H, W, C) uint8; anything else is an error naming ``path``."""
    if images.ndim == 3:
        images = images[:, :, :, None]
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise InputError(f"expected images of shape (N, H, W) or (N, H, W, 1|3), got {images.shape}", path)
    if images.dtype != np.uint8:
        if np.issubdtype(images.dtype, np.floating) and images.size and images.max() <= 1.0:
            images = np.round(images * 255.0)
        images = np.clip(images, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(images)
