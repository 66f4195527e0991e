"""One entry point to every readable source: ``read_source(spec) -> {split: DigitSet}``.

A spec is a path (folder or file, in any format of ``diffadapt.data.formats``) or the name of an embedded
domain (``mnist``, ``mnistm``, ``usps``, ``svhn``, optionally written ``embedded:NAME``). A path wins over
an embedded name, so a folder called ``usps`` in the working directory is read as a folder.
"""

from __future__ import annotations

from pathlib import Path

from diffadapt.data.domains import guess_domain
from diffadapt.data.embedded import EMBEDDED_DOMAINS, load_embedded
from diffadapt.data.formats import course, folders, idx, mnistm, npz, svhn, usps
from diffadapt.data.imageio import list_images
from diffadapt.data.types import DigitSet, concat, stratified_split
from diffadapt.errors import InputError


def _source_path(text: str) -> Path:
    try:
        return Path(text).expanduser()
    except RuntimeError:  # "~nosuchuser/...": no home folder to expand to, so the text is taken as written
        return Path(text)


def check_source_exists(spec: str | Path) -> None:
    """The first check :func:`read_source` makes, without reading anything: ``spec`` is an existing path or an
    embedded domain's name (for commands that read their sources late and should fail early)."""
    text = str(spec)
    if text.startswith("embedded:") or text in EMBEDDED_DOMAINS:
        return
    path = _source_path(text)
    if not path.exists():
        raise InputError(f"no such file or folder, and not an embedded domain ({', '.join(EMBEDDED_DOMAINS)})", path)


def read_source(spec: str | Path, seed: int = 0, progress: bool = True) -> dict[str, DigitSet]:
    """Read any supported source into ``{split: DigitSet}`` (splits among train, val, test, extra, unlabelled)."""
    text = str(spec)
    if text.startswith("embedded:"):
        return load_embedded(text.split(":", 1)[1], seed)
    path = _source_path(text)
    if not path.exists():
        check_source_exists(text)
        return load_embedded(text, seed)
    domain = guess_domain(path)
    if path.is_file():
        return _read_file(path, domain)
    try:
        return _read_folder(path, domain, progress)
    except OSError as exc:  # an unreadable folder (permissions), a folder removed while being read
        raise InputError(f"cannot read the folder ({exc.strerror or exc})", exc.filename or path) from None


def _read_file(path: Path, domain: str) -> dict[str, DigitSet]:
    name = path.name.lower()
    if name.endswith(".npz"):
        return npz.read_npz(path, domain)
    if name.endswith((".h5", ".hdf5")):
        return usps.read_usps_h5(path)
    if name.endswith(".mat"):
        split = name.split("_")[0] if name.split("_")[0] in svhn.SPLITS else "train"
        return {split: svhn.read_svhn_mat(path)}
    if name.endswith(".bz2") or name in ("usps", "usps.t"):
        return {"test" if ".t" in name else "train": usps.read_usps_libsvm(path)}
    if "ubyte" in name:
        return idx.read_idx_folder(path.parent, domain)
    raise InputError("unknown file format (expected .npz, .h5, .mat, .bz2 or MNIST IDX)", path)


def _read_folder(path: Path, domain: str, progress: bool) -> dict[str, DigitSet]:
    if course.is_course_layout(path):
        return course.read_course(path, progress)
    if mnistm.is_mnistm_release(path):
        return mnistm.read_mnistm_release(path, progress)
    if idx.is_idx_folder(path):
        return idx.read_idx_folder(path, domain)
    if svhn.is_svhn_folder(path):
        return svhn.read_svhn_folder(path)
    if usps.is_usps_folder(path):
        return usps.read_usps_folder(path)
    if folders.is_split_class_folder(path):
        return folders.read_split_class_folder(path, domain, progress)
    if folders.is_class_folder(path):
        return {"train": folders.read_class_folder(path, domain, progress)}
    if (path / "data").is_dir() and not any(path.glob("*.csv")):
        raise InputError("course layout needs train.csv or val.csv beside data/", path)
    if list_images(path):
        return {"unlabelled": folders.read_unlabelled_folder(path, domain, progress)}
    if not any(path.iterdir()):
        raise InputError("folder is empty", path)
    misnamed = folders.misnamed_class_folder(path)
    if misnamed is not None:
        raise InputError(f"no readable digit data here: class subfolders must be named 0..9 (or sit in train/val/test), found {misnamed.name!r}",
                         misnamed.parent)
    raise InputError("no readable digit data here (course layout, MNIST-M or SVHN release, IDX, USPS, class folders, images)", path)


def labelled_train(splits: dict[str, DigitSet], source: str | Path | None = None) -> DigitSet:
    """The ``train`` split, or every labelled split together when a source has none (e.g. MNIST's t10k alone);
    ``source`` names the source in the error when there is none."""
    if "train" in splits:
        return splits["train"]
    labelled = [s for s in splits.values() if s.labelled]
    if not labelled:
        raise InputError("source has no labelled training split", source)
    return concat(labelled)


def train_val(splits: dict[str, DigitSet], val_fraction: float = 0.2, seed: int = 0, source: str | Path | None = None) -> tuple[DigitSet, DigitSet]:
    """The (train, val) pair every task uses.

    A source with a ``val`` split keeps it. Otherwise ``val_fraction`` of each class of ``train`` is held
    out (deterministic for ``seed``); a ``test`` split is never touched, so it stays unseen.
    """
    train = labelled_train(splits, source)
    if "val" in splits:
        return train, splits["val"]
    kept, held = stratified_split(train.labels, val_fraction, seed)
    return train.subset(kept), train.subset(held)
