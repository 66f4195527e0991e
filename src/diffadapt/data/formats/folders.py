"""Plain folders: class subfolders (``ROOT/[split/]0..9/*.png``) and flat unlabelled image folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffadapt.data.imageio import list_images, read_images
from diffadapt.data.types import UNLABELLED, DigitSet
from diffadapt.errors import InputError

CLASS_NAMES = [str(d) for d in range(10)]


def _class_dirs(root: Path) -> list[Path]:
    return [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]


def is_class_folder(root: Path) -> bool:
    dirs = _class_dirs(root)
    return bool(dirs) and all(d.name in CLASS_NAMES for d in dirs)


def read_class_folder(root: Path, domain: str, progress: bool = True) -> DigitSet:
    dirs = _class_dirs(root)
    bad = [d.name for d in dirs if d.name not in CLASS_NAMES]
    if bad:
        raise InputError(f"class subfolders must be named 0..9, found {bad[0]!r}", root)
    paths: list[Path] = []
    labels: list[int] = []
    for folder in dirs:
        files = list_images(folder)
        paths += files
        labels += [int(folder.name)] * len(files)
    if not paths:
        raise InputError("class subfolders hold no images", root)
    return DigitSet(read_images(paths, progress=progress), np.array(labels), domain, [f"{int(l)}/{p.name}" for p, l in zip(paths, labels)])


def is_split_class_folder(root: Path) -> bool:
    dirs = _class_dirs(root)
    return bool(dirs) and all(d.name in ("train", "val", "test") and is_class_folder(d) for d in dirs)


def read_split_class_folder(root: Path, domain: str, progress: bool = True) -> dict[str, DigitSet]:
    return {d.name: read_class_folder(d, domain, progress) for d in _class_dirs(root)}


def read_unlabelled_folder(root: str | Path, domain: str, progress: bool = True) -> DigitSet:
    """A flat folder of images to predict on; labels are -1. An empty folder is an error."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("image folder not found", root)
    paths = list_images(root)
    if not paths:
        raise InputError("folder holds no images (.png, .jpg, ...)", root)
    return DigitSet(read_images(paths, progress=progress), np.full(len(paths), UNLABELLED), domain, [p.name for p in paths])
