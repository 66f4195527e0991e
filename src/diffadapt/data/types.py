"""The one in-memory form every reader returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

NUM_CLASSES = 10
UNLABELLED = -1


@dataclass
class DigitSet:
    """Images of one split of one domain.

    Attributes:
        images: (N, H, W, C) uint8 in [0, 255], C = 1 (gray) or 3 (RGB).
        labels: (N,) int64 in 0..9, or -1 for unlabelled images.
        domain: the domain's name ("mnistm", "usps", "svhn", ...).
        names: optional file names, one per image (course layout, folders).
    """

    images: np.ndarray
    labels: np.ndarray
    domain: str
    names: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4 or self.images.shape[3] not in (1, 3):
            raise ValueError(f"images must be (N, H, W, 1|3) uint8, got {self.images.shape} {self.images.dtype}")
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"{len(self.labels)} labels for {len(self.images)} images")
        # Readers check labels against their file and row; this is the last guard against a wrong result.
        if len(self.labels) and (self.labels.min() < UNLABELLED or self.labels.max() >= NUM_CLASSES):
            raise ValueError(f"labels must lie in 0..{NUM_CLASSES - 1} (or {UNLABELLED}), found {self.labels.min()}..{self.labels.max()}")
        if self.names is not None and len(self.names) != len(self.images):
            raise ValueError(f"{len(self.names)} names for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labelled(self) -> bool:
        return len(self) > 0 and bool((self.labels >= 0).all())

    @property
    def size(self) -> tuple[int, int]:
        return int(self.images.shape[1]), int(self.images.shape[2])

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    def subset(self, index: np.ndarray | Sequence[int]) -> DigitSet:
        index = np.asarray(index, dtype=np.int64)
        names = [self.names[i] for i in index] if self.names is not None else None
        return DigitSet(self.images[index], self.labels[index], self.domain, names)

    def class_counts(self) -> np.ndarray:
        """(10,) int64 images per class (unlabelled images are not counted)."""
        return np.bincount(self.labels[self.labels >= 0], minlength=NUM_CLASSES)[:NUM_CLASSES]


def concat(sets: Sequence[DigitSet]) -> DigitSet:
    """Concatenate splits of one domain (same image size and channels)."""
    if not sets:
        raise ValueError("nothing to concatenate")
    names = None
    if all(s.names is not None for s in sets):
        names = [n for s in sets for n in s.names]  # type: ignore[union-attr]
    return DigitSet(
        np.concatenate([s.images for s in sets]), np.concatenate([s.labels for s in sets]), sets[0].domain, names
    )


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, held_out) with ``fraction`` of each class held out; deterministic."""
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for cls in np.unique(labels):
        index = np.flatnonzero(labels == cls)
        rng.shuffle(index)
        held.append(index[: round(len(index) * fraction)])
    held_out = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[held_out] = False
    return np.flatnonzero(mask), held_out
