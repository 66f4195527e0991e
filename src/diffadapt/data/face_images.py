"""Face images for unconditional training: a folder or a .zip of images of any size (e.g. aligned CelebA).

Each image is read under the rules of ``imageio.py`` (our formats only, at most 4096 x 4096 pixels,
checked on the header before decoding). A folder's images must lie inside it: a symlink to a file
elsewhere is refused. A zip member may be at most :data:`MAX_MEMBER_BYTES` once unpacked, checked on the
size the archive declares and again while unpacking (the declared size can lie).
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from diffadapt.data.formats.checks import check_array_bytes, require_inside, resolved, shorten
from diffadapt.data.imageio import IMAGE_SUFFIXES, list_images, open_checked, quiet_pil
from diffadapt.errors import InputError

# An aligned CelebA JPEG is 10 KB, a 4096 x 4096 PNG at most 64 MB: more is no face image.
MAX_MEMBER_BYTES = 64 * 2**20
# The faces a training holds: 10,000 aligned CelebA faces at 256 x 256 take 1.97 GB; training holds them about
# twice more (channel-first copies), so a zip of tiny images cannot grow past a few GB of memory.
MAX_FACE_BYTES = 2 * 2**30


def square_resize(image: Image.Image, size: int) -> np.ndarray:
    """Centre crop to a square, resize to size x size (bicubic, antialiased) -> (size, size, 3) uint8."""
    image = image.convert("RGB")
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return np.asarray(image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC))


def _face(source, where: str | Path, size: int) -> np.ndarray:
    """One image (a path or an open binary file) -> (size, size, 3) uint8; errors name ``where``."""
    image = open_checked(source, where)
    try:
        with image:
            return square_resize(image, size)
    except Exception as exc:  # noqa: BLE001 - PIL's decoders fail in their own ways on damaged data (see imageio.decode)
        raise InputError(f"corrupt or unreadable image ({type(exc).__name__}: {exc})", where) from None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: Path) -> bytes:
    where = _member(source, info)
    if info.file_size > MAX_MEMBER_BYTES:
        raise InputError(f"unpacks to {info.file_size / 2**20:.0f} MiB, more than {MAX_MEMBER_BYTES // 2**20} MiB", where)
    try:
        with archive.open(info) as member:
            data = member.read(MAX_MEMBER_BYTES + 1)
    # NotImplementedError: an unknown compression method; RuntimeError: an encrypted member.
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
        raise InputError(f"cannot unpack ({type(exc).__name__}: {exc})", where) from None
    if len(data) > MAX_MEMBER_BYTES:
        raise InputError(f"unpacks to more than {MAX_MEMBER_BYTES // 2**20} MiB", where)
    return data


def _member(source: Path, info: zipfile.ZipInfo) -> str:
    """How errors name a zip member: ``faces.zip, member img/001.jpg``."""
    return f"{source}, member {shorten(info.filename, 80)}"


def read_face_images(source: str | Path, size: int, limit: int = 0, progress: bool = True) -> np.ndarray:
    """(N, size, size, 3) uint8 from a folder or .zip of images, sorted by name; ``limit`` > 0 keeps the first N.
    The N images at ``size`` must fit :data:`MAX_FACE_BYTES` (checked before any is decoded: a zip of tiny images
    would otherwise grow a thousandfold)."""

    source = Path(source)
    if not source.exists():
        raise InputError("image folder or zip not found", source)
    with quiet_pil():
        if source.is_file() and source.suffix.lower() == ".zip":
            try:
                archive = zipfile.ZipFile(source)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise InputError(f"not a readable zip file ({exc})", source) from None
            with archive:
                members = sorted(
                    # ZipInfo.is_dir() fails on an empty member name: test the name itself
                    (i for i in archive.infolist() if not i.filename.endswith("/") and Path(i.filename).suffix.lower() in IMAGE_SUFFIXES),
                    key=lambda i: i.filename,
                )
                members = members[:limit] if limit > 0 else members
                images = _face_array(len(members), size, source)
                for index, info in enumerate(_bar(members, progress)):
                    data = _read_member(archive, info, source)
                    images[index] = _face(io.BytesIO(data), _member(source, info), size)
        elif source.is_dir():
            paths = list_images(source)
            paths = paths[:limit] if limit > 0 else paths
            root = resolved(source)
            images = _face_array(len(paths), size, source)
            for index, path in enumerate(_bar(paths, progress)):
                images[index] = _face(require_inside(path, source, root), path, size)
        else:
            raise InputError("expected a folder or a .zip of images", source)
    return images


def _face_array(count: int, size: int, source: Path) -> np.ndarray:
    """The empty (count, size, size, 3) uint8 array the faces are read into, within the array budget."""
    if count == 0:
        raise InputError("no images found", source)
    check_array_bytes((count, size, size, 3), 1, source, f"{count:,} face images at {size}x{size}", MAX_FACE_BYTES)
    return np.empty((count, size, size, 3), dtype=np.uint8)


def _bar(items: list, progress: bool) -> Iterable:
    return tqdm(items, desc="reading faces", unit="img", leave=False, disable=not progress or len(items) < 2000)
