"""Face images for unconditional training: a folder or a .zip of images of any size (e.g. aligned CelebA)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from diffadapt.data.imageio import IMAGE_SUFFIXES, list_images
from diffadapt.errors import InputError


def square_resize(image: Image.Image, size: int) -> np.ndarray:
    """Centre crop to a square, resize to size x size (bicubic, antialiased) -> (size, size, 3) uint8."""
    image = image.convert("RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return np.asarray(image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC))


def read_face_images(source: str | Path, size: int, limit: int = 0) -> np.ndarray:
    """(N, size, size, 3) uint8 from a folder or .zip of images, sorted by name; ``limit`` > 0 keeps the first N."""

    source = Path(source)
    if not source.exists():
        raise InputError("image folder or zip not found", source)
    images = []
    if source.is_file() and source.suffix.lower() == ".zip":
        try:
            archive = zipfile.ZipFile(source)
        except zipfile.BadZipFile as exc:
            raise InputError(f"not a readable zip file ({exc})", source) from None
        with archive:
            names = sorted(n for n in archive.namelist() if Path(n).suffix.lower() in IMAGE_SUFFIXES)
            names = names[:limit] if limit > 0 else names
            for name in tqdm(names, desc="reading faces", unit="img", leave=False, disable=len(names) < 2000):
                try:
                    with Image.open(io.BytesIO(archive.read(name))) as image:
                        images.append(square_resize(image, size))
                except (UnidentifiedImageError, OSError) as exc:
                    raise InputError(f"corrupt image {name} ({exc})", source) from None
    elif source.is_dir():
        paths = list_images(source)
        paths = paths[:limit] if limit > 0 else paths
        for path in tqdm(paths, desc="reading faces", unit="img", leave=False, disable=len(paths) < 2000):
            try:
                with Image.open(path) as image:
                    images.append(square_resize(image, size))
            except (UnidentifiedImageError, OSError) as exc:
                raise InputError(f"corrupt or unreadable image ({exc})", path) from None
    else:
        raise InputError("expected a folder or a .zip of images", source)
    if not images:
        raise InputError("no images found", source)
    return np.stack(images)
