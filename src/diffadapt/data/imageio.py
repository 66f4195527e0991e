"""Reading image files into uint8 arrays, with one clear error per bad file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from diffadapt.errors import InputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def read_image(path: str | Path) -> np.ndarray:
    """One image file -> (H, W, C) uint8, C = 1 for grayscale files, 3 otherwise (alpha dropped)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("image file not found", path)
    try:
        with Image.open(path) as image:
            image.load()  # decoding here, not lazily, so a truncated file fails now, naming itself
            if image.mode in ("L", "1", "I;16", "I", "F"):
                array = np.asarray(image.convert("L"))[:, :, None]
            else:
                array = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"corrupt or unreadable image ({exc})", path) from None
    return array


def read_images(paths: Sequence[Path], workers: int | None = None, progress: bool = True) -> np.ndarray:
    """Read many image files of one size -> (N, H, W, C) uint8.

    PIL releases the GIL while decoding, so a thread pool reads PNG folders several times faster than a loop.
    Mixed sizes or channel counts are an error naming the first file that differs.
    """
    if not paths:
        raise ValueError("no images to read")
    workers = workers or min(8, (os.cpu_count() or 1) * 2)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        iterator = pool.map(read_image, paths, chunksize=256)
        arrays = list(
            tqdm(iterator, total=len(paths), desc="reading images", unit="img", disable=not progress or len(paths) < 2000, leave=False)
        )
    first = arrays[0].shape
    for path, array in zip(paths, arrays):
        if array.shape != first:
            raise InputError(
                f"image is {array.shape[1]}x{array.shape[0]}x{array.shape[2]}, but {paths[0].name} is "
                f"{first[1]}x{first[0]}x{first[2]}: mixed image sizes",
                path,
            )
    return np.stack(arrays)


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
