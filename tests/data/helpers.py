"""Writers of small files in every format users hold, for reader tests."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def random_digits(rng: np.random.Generator, n: int, side: int = 28, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    images = rng.integers(0, 256, size=(n, side, side, channels), dtype=np.uint8)
    labels = np.arange(n) % 10
    return images, labels


def write_png(path: Path, image: np.ndarray) -> None:
    Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(path)


def write_course(root: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    (root / "data").mkdir(parents=True)
    number = 0
    for split, (images, labels) in splits.items():
        with open(root / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image_name", "label"])
            for image, label in zip(images, labels):
                name = f"{number:05d}.png"
                write_png(root / "data" / name, image)
                writer.writerow([name, int(label)])
                number += 1
