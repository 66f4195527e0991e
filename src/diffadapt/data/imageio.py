"""Reading image files into uint8 arrays, with one clear error per bad file.

Formats: PNG, JPEG, BMP, GIF, TIFF and WebP, and only those: PIL would otherwise try every format it knows
on a damaged file (EPS among them, which runs Ghostscript).

Size: an image may have at most :data:`MAX_PIXELS` pixels (4096 x 4096 = 16.8 Mpx), checked on the size its
header declares, before anything is decoded. Digits are tiny and faces a few megapixels at most; a PNG of
a few kilobytes can declare 20000 x 20000 and take gigabytes to decode (a "decompression bomb").

Pixel values, by PIL mode (the bit depth a file declares):

- 8-bit modes (L, 1, P, RGB, RGBA, CMYK, YCbCr, ...): as they are; 1-bit black and white becomes 0 / 255.
- I;16, I;16B, I;16L, I;16N (16-bit unsigned, e.g. 16-bit grayscale PNG and TIFF): full range 0..65535
  maps onto 0..255 as ``round(x / 257)`` (65535 / 257 = 255 exactly).
- I (32-bit signed integers, PIL's mode for signed 16-bit and 32-bit TIFF): read as 16-bit data, so the
  values must lie in 0..65535; anything else is an error, not a clipped guess.
- F (32-bit float TIFF): no range is declared, so the float rule of ``formats/checks.py`` applies (finite,
  [0, 1] scaled by 255 or [0, 255] as is, else an error).

Gray modes (L, LA, 1, I;16*, I, F) give one channel, everything else three (RGB); alpha is dropped.

Many images (:func:`read_images`): the first file's header fixes the shape, so the whole (N, H, W, C) array
is checked against ``formats/checks.py``'s :data:`MAX_ARRAY_BYTES` before anything is decoded; each image
is then decoded straight into its slot of that one array, its header checked against the shape first.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from diffadapt.data.formats.checks import check_array_bytes, to_uint8
from diffadapt.errors import InputError
from diffadapt.io import require_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
MAX_SIDE = 4096
MAX_PIXELS = MAX_SIDE * MAX_SIDE
IN_FLIGHT_BYTES = 512 * 2**20  # decoded images held by read_images' workers at once, beyond its result

_GRAY_8BIT = ("L", "LA", "La", "1")
_UNSIGNED_16BIT = ("I;16", "I;16B", "I;16L", "I;16N")


@contextlib.contextmanager
def quiet_pil() -> Iterator[None]:
    """Hold PIL's warnings back while decoding (they would print before our one-line error), except its
    DecompressionBombWarning, which becomes an exception that :func:`decode` turns into that error.

    Warning filters are process-wide, so enter this once, in the thread that starts any worker threads.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def open_checked(source, path: str | Path) -> Image.Image:
    """``Image.open`` of our formats, with the size its header declares checked against :data:`MAX_PIXELS`.

    ``source`` is a path or a binary file object; errors name ``path``. Call inside :func:`quiet_pil`.
    """
    try:
        image = Image.open(source, formats=PIL_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"image declares more than {Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; {_limit_text()}", path) from None
    except Exception as exc:  # noqa: BLE001 - PIL's plugins raise many unrelated types (struct.error, IndexError, ...) for damaged headers
        raise InputError(f"corrupt or unreadable image ({_describe(exc)})", path) from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise InputError(f"image is {width}x{height} pixels ({width * height / 1e6:.1f} Mpx); {_limit_text()}", path)
    return image


def _limit_text() -> str:
    return f"images over {MAX_SIDE}x{MAX_SIDE} ({MAX_PIXELS / 1e6:.1f} Mpx) are refused"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def channels_of(mode: str) -> int:
    """The channels :func:`decode` gives an image of PIL ``mode``: 1 for the gray modes, 3 for the rest."""
    return 1 if mode in _GRAY_8BIT or mode in _UNSIGNED_16BIT or mode in ("I", "F") else 3


def declared_shape(path: Path) -> tuple[int, int, int]:
    """(H, W, C) that decoding ``path`` gives, from its header alone (nothing decoded)."""
    with open_checked(path, path) as image:
        return image.size[1], image.size[0], channels_of(image.mode)


def _mixed_sizes(shape: tuple[int, ...], first: tuple[int, ...], first_name: str, path: Path) -> InputError:
    return InputError(f"image is {shape[1]}x{shape[0]}x{shape[2]}, but {first_name} is {first[1]}x{first[0]}x{first[2]}: mixed image sizes", path)


def decode(path: Path, expected: tuple[tuple[int, int, int], str] | None = None) -> np.ndarray:
    """One image file -> (H, W, C) uint8 by the module's rules, without touching warning filters.

    ``expected`` is (shape, name of the file that set it): a header declaring another shape is refused before
    its pixels are decoded.
    """
    image = open_checked(path, path)
    if expected is not None:
        shape = (image.size[1], image.size[0], channels_of(image.mode))
        if shape != expected[0]:
            image.close()
            raise _mixed_sizes(shape, *expected, path)
    try:
        with image:
            image.load()  # decoding here, not lazily, so a truncated file fails now, naming itself
            mode = image.mode
            if mode in _GRAY_8BIT:
                raw = np.asarray(image.convert("L"))[:, :, None]
            elif mode in _UNSIGNED_16BIT or mode in ("I", "F"):
                raw = np.asarray(image)
            else:
                if mode == "P" and "transparency" in image.info:
                    image = image.convert("RGBA")  # PIL warns when a palette with transparency goes straight to RGB
                raw = np.asarray(image.convert("RGB"))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - as in open_checked: a damaged stream fails in any of the decoders' own ways
        raise InputError(f"corrupt or unreadable image ({_describe(exc)})", path) from None
    if raw.dtype == np.uint8:
        return raw
    return _wide_to_uint8(raw, mode, path)[:, :, None]


def _wide_to_uint8(raw: np.ndarray, mode: str, path: Path) -> np.ndarray:
    if mode == "F":
        return to_uint8(raw.astype(np.float64), path, "32-bit float image")
    values = raw.astype(np.int64)
    if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
        raise InputError(
            f"32-bit integer image holds values from {values.min()} to {values.max()}; integer images must lie in 0..65535 "
            "(read as 16-bit)", path)
    # Integer arithmetic: (x * 2 + 257) // 514 is round-half-up of x / 257, exact for every 16-bit value.
    return ((values * 2 + 257) // 514).astype(np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """One image file -> (H, W, C) uint8, C = 1 for grayscale files, 3 otherwise (alpha dropped)."""
    path = Path(path)
    _check_file(path)
    with quiet_pil():
        return decode(path)


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise InputError("is a folder, not an image file", path)
    if not path.is_file():
        raise InputError("image file not found", path)


def read_images(paths: Sequence[Path], workers: int | None = None, progress: bool = True, source: str | Path | None = None) -> np.ndarray:
    """Read many image files of one size -> (N, H, W, C) uint8.

    PIL releases the GIL while decoding, so a thread pool reads PNG folders several times faster than a loop.
    Mixed sizes or channel counts are an error naming the first file that differs, found from its header.
    The array the headers declare may be at most ``MAX_ARRAY_BYTES``, else an error naming ``source`` (the
    csv or folder that lists the images; default: the first image's folder), before any image is decoded.
    """
    if not paths:
        raise InputError("no images to read")
    workers = workers or min(8, (os.cpu_count() or 1) * 2)

    with quiet_pil():
        _check_file(paths[0])
        first = declared_shape(paths[0])
        shape = (len(paths), *first)
        check_array_bytes(shape, 1, source if source is not None else paths[0].parent, f"the list of {len(paths)} images of {first[1]}x{first[0]}x{first[2]}")
        images = np.empty(shape, dtype=np.uint8)
        expected = (first, paths[0].name)
        # Each worker holds one image being decoded (PIL's copy and the converted one, about 3x its array):
        # large images get fewer workers, so the work in flight stays under IN_FLIGHT_BYTES.
        workers = max(1, min(workers, IN_FLIGHT_BYTES // max(1, 3 * first[0] * first[1] * first[2])))

        def read_into(index: int) -> None:
            path = paths[index]
            _check_file(path)
            array = decode(path, expected)
            if array.shape != first:  # a decoder that gives another size than its header declared
                raise _mixed_sizes(array.shape, *expected, path)
            images[index] = array

        with ThreadPoolExecutor(max_workers=workers) as pool:
            try:
                done = pool.map(read_into, range(len(paths)), chunksize=256)
                for _ in tqdm(done, total=len(paths), desc="reading images", unit="img", disable=not progress or len(paths) < 2000, leave=False):
                    pass
            except BaseException:
                # One bad file ends the read: drop the chunks not yet started instead of decoding them all first.
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    return images


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name. An entry named like an image that is not a regular
    file (a folder, a broken link or link loop, a pipe, a device) is refused rather than skipped: dropping it
    would silently give fewer rows than the folder shows."""
    folder = Path(folder)
    try:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as exc:
        raise InputError(f"cannot list the folder ({exc.strerror or exc})", folder) from None
    for path in paths:
        require_file(path, "an image file", "has vanished while the folder was read")
        try:
            path.name.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 arrive as lone surrogates, which no CSV or page can hold
            raise InputError(f"file name {ascii(path.name)} is not valid UTF-8; rename the file", folder) from None
    return paths
