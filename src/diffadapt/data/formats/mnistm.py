"""The original MNIST-M release (Ganin et al.): ``mnist_m_train/``, ``mnist_m_test/`` and
``mnist_m_{train,test}_labels.txt`` with lines ``00000000.png 5``; 32x32 RGB PNG.

A labels file is UTF-8 text; its image names must stay inside their image folder once resolved (symlinks
included), as in the course layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffadapt.data.formats.checks import parse_label, resolved, resolves_inside, shorten
from diffadapt.data.formats.course import read_text_file
from diffadapt.data.imageio import read_images
from diffadapt.data.types import DigitSet
from diffadapt.errors import InputError


def is_mnistm_release(root: Path) -> bool:
    return any((root / f"mnist_m_{s}_labels.txt").is_file() for s in ("train", "test"))


def read_mnistm_release(root: str | Path, progress: bool = True) -> dict[str, DigitSet]:
    root = Path(root)
    splits: dict[str, DigitSet] = {}
    for split in ("train", "test"):
        labels_path = root / f"mnist_m_{split}_labels.txt"
        if not labels_path.is_file():
            continue
        folder = root / f"mnist_m_{split}"
        if not folder.is_dir():
            raise InputError(f"labels file found but its image folder {folder.name}/ is missing", labels_path)
        folder_root = resolved(folder)
        paths, labels = [], []
        for row_number, line in enumerate(read_text_file(labels_path, "labels").split("\n"), start=1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise InputError("expected 'file_name label'", labels_path, row=row_number)
            path = folder / parts[0]
            if not resolves_inside(path, folder, folder_root):
                raise InputError(f"image {shorten(parts[0])!r} lies outside {folder}; names must stay inside it", labels_path, row=row_number)
            if not path.is_file():
                raise InputError(f"image {shorten(parts[0])!r} does not exist in {folder}", labels_path, row=row_number)
            labels.append(parse_label(parts[1], labels_path, row_number))
            paths.append(path)
        if not paths:
            raise InputError("labels file has no rows", labels_path)
        images = read_images(paths, progress=progress)
        splits[split] = DigitSet(images, np.array(labels, dtype=np.int64), "mnistm", [p.name for p in paths])
    if not splits:
        raise InputError("no mnist_m_train_labels.txt or mnist_m_test_labels.txt found", root)
    return splits
