"""Plain folders: class subfolders (``ROOT/[split/]0..9/*.png``) and flat unlabelled image folders.

Only files inside the folder given are read: an image or class subfolder that is a symlink to somewhere
outside it is an error naming the link (a link to another file inside the folder is fine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffadapt.data.formats.checks import resolved, resolves_inside
from diffadapt.data.imageio import list_images, read_images
from diffadapt.data.types import UNLABELLED, DigitSet
from diffadapt.errors import InputError

CLASS_NAMES = [str(d) for d in range(10)]


def _class_dirs(root: Path) -> list[Path]:
    try:
        return [d for d in sorted(root.iterdir()) if not d.name.startswith(".") and d.is_dir()]
    except OSError as exc:
        raise InputError(f"cannot list the folder ({exc.strerror or exc})", root) from None


def _check_inside(path: Path, folder: Path, within: Path, resolved_within: Path) -> Path:
    """``path``, an entry of ``folder`` (itself inside ``within``), unless it leads outside ``within``."""
    if not resolves_inside(path, folder, resolved_within):
        raise InputError(f"is a link to outside {within}; only files inside the folder are read", path)
    return path


def is_class_folder(root: Path) -> bool:
    dirs = _class_dirs(root)
    return bool(dirs) and all(d.name in CLASS_NAMES for d in dirs)


def misnamed_class_folder(root: Path) -> Path | None:
    """The first subfolder of ``root`` (or of its train / val / test folders) not named 0..9, if any: what
    to name when a folder of subfolders is read as nothing else."""
    for folder in _class_dirs(root):
        if folder.name in ("train", "val", "test"):
            inner = misnamed_class_folder(folder)
            if inner is not None:
                return inner
        elif folder.name not in CLASS_NAMES:
            return folder
    return None


def read_class_folder(root: Path, domain: str, progress: bool = True, within: Path | None = None) -> DigitSet:
    """``root/0..9/*.png``; every file must lie inside ``within`` (default ``root``) once resolved."""
    within = within or root
    resolved_within = resolved(within)
    dirs = _class_dirs(root)
    bad = [d.name for d in dirs if d.name not in CLASS_NAMES]
    if bad:
        raise InputError(f"class subfolders must be named 0..9, found {bad[0]!r}", root)
    paths: list[Path] = []
    labels: list[int] = []
    for folder in dirs:
        _check_inside(folder, root, within, resolved_within)
        files = [_check_inside(p, folder, within, resolved_within) for p in list_images(folder)]
        paths += files
        labels += [int(folder.name)] * len(files)
    if not paths:
        raise InputError("class subfolders hold no images", root)
    return DigitSet(read_images(paths, progress=progress), np.array(labels), domain, [f"{int(label)}/{p.name}" for p, label in zip(paths, labels)])


def is_split_class_folder(root: Path) -> bool:
    dirs = _class_dirs(root)
    return bool(dirs) and all(d.name in ("train", "val", "test") and is_class_folder(d) for d in dirs)


def read_split_class_folder(root: Path, domain: str, progress: bool = True) -> dict[str, DigitSet]:
    resolved_root = resolved(root)
    dirs = [_check_inside(d, root, root, resolved_root) for d in _class_dirs(root)]
    return {d.name: read_class_folder(d, domain, progress, within=root) for d in dirs}


def read_unlabelled_folder(root: str | Path, domain: str, progress: bool = True) -> DigitSet:
    """A flat folder of images to predict on; labels are -1. An empty folder is an error."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("image folder not found", root)
    resolved_root = resolved(root)
    paths = [_check_inside(p, root, root, resolved_root) for p in list_images(root)]
    if not paths:
        raise InputError("folder holds no images (.png, .jpg, ...)", root)
    return DigitSet(read_images(paths, progress=progress), np.full(len(paths), UNLABELLED), domain, [p.name for p in paths])
