"""The course layout: ``ROOT/data/*.png`` with ``ROOT/train.csv`` and ``ROOT/val.csv``.

Each csv has the header ``image_name,label`` and one row per image. MNIST-M and SVHN there are 28x28 RGB,
USPS 28x28 gray. Unlabelled folders for prediction are plain folders of images (see ``folders.py``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from diffadapt.data.domains import guess_domain
from diffadapt.data.formats.checks import check_labels
from diffadapt.data.imageio import read_images
from diffadapt.data.types import DigitSet
from diffadapt.errors import InputError

CSV_HEADER = ("image_name", "label")
SPLIT_ORDER = ("train", "val", "test")
DOMAIN_FILE = "domain.txt"  # written by `data prepare`; optional


def is_course_layout(root: Path) -> bool:
    return (root / "data").is_dir() and any((root / f"{s}.csv").exists() for s in SPLIT_ORDER)


def read_csv_rows(csv_path: Path) -> list[tuple[str, str]]:
    if not csv_path.is_file():
        raise InputError("csv file not found", csv_path)
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise InputError("csv file is empty", csv_path)
    header = tuple(h.strip() for h in rows[0])
    if header[:2] != CSV_HEADER:
        raise InputError(f"csv header must be 'image_name,label', got {','.join(header)!r}", csv_path)
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


def read_course_split(root: Path, split: str, progress: bool = True) -> DigitSet:
    """One split of a course-layout folder; the error for a bad row names the csv and its row number."""
    csv_path = root / f"{split}.csv"
    rows = read_csv_rows(csv_path)
    data_dir = root / "data"
    paths: list[Path] = []
    raw_labels: list[int] = []
    for row_number, (name, label_text) in enumerate(rows, start=2):
        path = data_dir / name
        if not path.is_file():
            raise InputError(f"image {name!r} named in the csv does not exist in {data_dir}", csv_path, row=row_number)
        try:
            raw_labels.append(int(label_text))
        except ValueError:
            raise InputError(f"label {label_text!r} is not a whole number", csv_path, row=row_number) from None
        paths.append(path)
    labels = check_labels(np.array(raw_labels), csv_path, first_row=2)
    images = read_images(paths, progress=progress)
    return DigitSet(images, labels, domain_name(root), [p.name for p in paths])


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
        name = recorded.read_text().strip()
        if name:
            return name
    return guess_domain(root)
