"""The course layout: ``ROOT/data/*.png`` with ``ROOT/train.csv`` and ``ROOT/val.csv``.

Each csv has the header ``image_name,label`` and one row per image. MNIST-M and SVHN there are 28x28 RGB,
USPS 28x28 gray. Unlabelled folders for prediction are plain folders of images (see ``folders.py``).

A csv is UTF-8 text (a byte-order mark is allowed, as Excel writes one); labels are whole numbers 0..9.
Image names are relative to ``data/`` and must stay inside it once resolved, symlinks included: a row
``../../secret.png`` or ``/etc/x.png`` is an error naming the csv and row, never a file read from elsewhere.
``data/`` itself may be a symlink (to a bigger disk, say): "inside" means inside the folder it resolves to.
A csv names each image once: a repeated name (``a.png`` twice, or ``a.png`` and ``./a.png``) is an error naming
both rows, found before any file is looked at, so a million rows naming one image cost a second, not gigabytes.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from diffadapt.data.domains import guess_domain
from diffadapt.data.formats.checks import parse_label, resolved, resolves_inside, shorten
from diffadapt.data.imageio import read_images
from diffadapt.data.types import DigitSet
from diffadapt.errors import InputError
from diffadapt.io import decode_utf8, read_bytes_limited

CSV_HEADER = ("image_name", "label")
SPLIT_ORDER = ("train", "val", "test")
DOMAIN_FILE = "domain.txt"  # written by `data prepare`; optional
MAX_CSV_BYTES = 256 * 2**20  # a csv row is ~16 bytes: 256 MiB is millions of images more than any digit set
MAX_DOMAIN_CHARS = 100


def is_course_layout(root: Path) -> bool:
    return (root / "data").is_dir() and any((root / f"{s}.csv").exists() for s in SPLIT_ORDER)


def read_text_file(path: Path, what: str, limit: int = MAX_CSV_BYTES) -> str:
    """A UTF-8 text file (BOM allowed) as str; a folder, an unreadable, huge or non-UTF-8 file is an error
    naming it (and the row of the first bad byte)."""
    return decode_utf8(read_bytes_limited(path, what, limit), path, f"; save the {what} as UTF-8")


def read_csv_rows(csv_path: Path) -> list[tuple[str, str]]:
    """The (image_name, label) rows of a course csv, header checked; rows are numbered from 2 as in an editor."""
    text = read_text_file(csv_path, "csv")
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:  # a field over csv's size limit, an unclosed quote at the end of the file
        raise InputError(f"malformed csv ({exc})", csv_path) from None
    if not rows:
        raise InputError("csv file is empty", csv_path)
    header = tuple(h.strip() for h in rows[0])
    if header[:2] != CSV_HEADER:
        raise InputError(f"csv header must be 'image_name,label', got {shorten(','.join(header))!r}", csv_path)
    out = []
    for row_number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 2:
            raise InputError("row needs image_name and label", csv_path, row=row_number)
        out.append((row[0].strip(), row[1].strip()))
    if not out:
        raise InputError("csv file has no rows", csv_path)
    return out


def check_unique_names(rows: list[tuple[str, str]], csv_path: Path) -> None:
    """Each image is named by one row (names compared as paths: ``./a.png`` is ``a.png``)."""
    first_row: dict[str, int] = {}
    for row_number, (name, _) in enumerate(rows, start=2):
        if not name:
            continue  # the row loop reports it
        key = os.path.normpath(name)
        seen = first_row.setdefault(key, row_number)
        if seen != row_number:
            raise InputError(f"image {shorten(name)!r} is named again (first on row {seen}); a csv names each image once", csv_path, row=row_number)


def read_course_split(root: Path, split: str, progress: bool = True) -> DigitSet:
    """One split of a course-layout folder; the error for a bad row names the csv and its row number."""
    csv_path = root / f"{split}.csv"
    rows = read_csv_rows(csv_path)
    check_unique_names(rows, csv_path)
    data_dir = root / "data"
    data_root = resolved(data_dir)
    paths: list[Path] = []
    labels: list[int] = []
    for row_number, (name, label_text) in enumerate(rows, start=2):
        if not name:
            raise InputError("image_name is empty", csv_path, row=row_number)
        path = data_dir / name
        if not resolves_inside(path, data_dir, data_root):
            raise InputError(f"image {shorten(name)!r} lies outside {data_dir}; the csv may only name files inside data/", csv_path, row=row_number)
        if not path.is_file():
            raise InputError(f"image {shorten(name)!r} named in the csv does not exist in {data_dir}", csv_path, row=row_number)
        labels.append(parse_label(label_text, csv_path, row_number))
        paths.append(path)
    images = read_images(paths, progress=progress, source=csv_path)
    return DigitSet(images, np.array(labels, dtype=np.int64), domain_name(root), [p.name for p in paths])


def read_course(root: str | Path, progress: bool = True) -> dict[str, DigitSet]:
    root = Path(root)
    if not (root / "data").is_dir():
        raise InputError("course layout needs a data/ folder of images", root)
    splits = {s: read_course_split(root, s, progress) for s in SPLIT_ORDER if (root / f"{s}.csv").exists()}
    if not splits:
        raise InputError("course layout needs train.csv or val.csv", root)
    return splits


def domain_name(root: Path) -> str:
    """Name a domain after its folder, recognising the usual names (``hw2_data/digits/usps`` -> usps)."""
    recorded = root / DOMAIN_FILE
    if recorded.is_file():
        lines = read_text_file(recorded, "domain name", limit=4096).strip().splitlines()
        if lines:
            name = lines[0].strip()
            if len(lines) > 1 or len(name) > MAX_DOMAIN_CHARS or not name.isprintable():
                raise InputError(f"must hold one domain name of at most {MAX_DOMAIN_CHARS} printable characters", recorded)
            return name
    return guess_domain(root)
