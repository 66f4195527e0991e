"""Image grids with optional row and column labels, written with PIL and matplotlib's bundled font."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from diffadapt.io import atomic_path, check_png_name


@lru_cache(maxsize=8)
def label_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans from matplotlib's data folder: present wherever matplotlib is, unlike system fonts."""
    font_path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(font_path), size)
    except OSError:
        return ImageFont.load_default()


def image_grid(
    images: np.ndarray,
    ncols: int,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    scale: int = 1,
    pad: int = 2,
    title: str | None = None,
) -> np.ndarray:
    """Tile images into a grid, row by row, with optional text labels.

    Args:
        images: (N, H, W, C) uint8, C in {1, 3}; N must fill whole rows.
        ncols: images per row.
        row_labels: one label per row, drawn to the left.
        col_labels: one label per column, drawn above.
        scale: nearest-neighbour upscaling factor per image (28x28 digits are tiny).
        pad: white pixels between images.
        title: optional text above everything.

    Returns:
        (H', W', 3) uint8 RGB array.
    """
    if images.ndim != 4 or images.dtype != np.uint8:
        raise ValueError(f"expected (N, H, W, C) uint8 images, got {images.shape} {images.dtype}")
    n, h, w, c = images.shape
    if n == 0 or n % ncols:
        raise ValueError(f"{n} images do not fill rows of {ncols}")
    nrows = n // ncols
    if row_labels is not None and len(row_labels) != nrows:
        raise ValueError(f"{len(row_labels)} row labels for {nrows} rows")
    if col_labels is not None and len(col_labels) != ncols:
        raise ValueError(f"{len(col_labels)} column labels for {ncols} columns")
    if c == 1:
        images = np.repeat(images, 3, axis=3)
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
    h, w = h * scale, w * scale

    font_size = max(10, min(h, 28) // 2 + 4)
    font = label_font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_size(text: str) -> tuple[int, int]:
        left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
        return right - left, bottom - top

    left_margin = pad
    if row_labels is not None:
        left_margin = max(text_size(t)[0] for t in row_labels) + 3 * pad
    top_margin = pad
    if col_labels is not None:
        top_margin = max(text_size(t)[1] for t in col_labels) + 3 * pad
    title_height = text_size(title)[1] + 3 * pad if title else 0

    width = left_margin + ncols * (w + pad)
    height = title_height + top_margin + nrows * (h + pad)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, pad), title, fill="black", font=font)
    y0 = title_height + top_margin
    for index in range(n):
        row, col = divmod(index, ncols)
        canvas.paste(Image.fromarray(images[index]), (left_margin + col * (w + pad), y0 + row * (h + pad)))
    if row_labels is not None:
        for row, text in enumerate(row_labels):
            tw, th = text_size(text)
            draw.text((left_margin - tw - 2 * pad, y0 + row * (h + pad) + (h - th) // 2), text, fill="black", font=font)
    if col_labels is not None:
        for col, text in enumerate(col_labels):
            tw, _ = text_size(text)
            draw.text((left_margin + col * (w + pad) + (w - tw) // 2, title_height + pad), text, fill="black", font=font)
    return np.asarray(canvas)


def save_grid(path: str | Path, images: np.ndarray, ncols: int, **kwargs) -> Path:
    """:func:`image_grid` written atomically as PNG; returns the path."""
    check_png_name(path)
    grid = image_grid(images, ncols, **kwargs)
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")
    return Path(path)
