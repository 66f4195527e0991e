"""Writing any source in the course layout, and summarising a source (``data prepare`` / ``data info``)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from diffadapt.data.formats.course import DOMAIN_FILE
from diffadapt.data.memory import convert_images
from diffadapt.data.types import DigitSet, stratified_split
from diffadapt.errors import InputError
from diffadapt.images import nchw_to_nhwc, nhwc_to_nchw
from diffadapt.io import atomic_dir, write_png
from diffadapt.progress import progress_bar


def with_val_split(splits: dict[str, DigitSet], val_fraction: float, seed: int) -> dict[str, DigitSet]:
    """Carve ``val`` out of ``train`` (stratified) when the source has no val split; other splits stay."""
    if "val" in splits or "train" not in splits or val_fraction <= 0:
        return dict(splits)
    kept, held = stratified_split(splits["train"].labels, val_fraction, seed)
    if len(kept) == 0 or len(held) == 0:
        raise InputError(f"--val-fraction {val_fraction:g} of {len(splits['train'])} training images leaves "
                         f"{len(kept)} for train and {len(held)} for val; give another fraction, or 0 for no val split")
    out = {"train": splits["train"].subset(kept), "val": splits["train"].subset(held)}
    out.update({k: v for k, v in splits.items() if k != "train"})
    return out


def resize_digitset(digits: DigitSet, channels: int | None, size: int | None) -> DigitSet:
    """The same images converted to ``channels`` and ``size`` (bilinear), labels and names unchanged."""
    if (channels is None or channels == digits.channels) and (size is None or digits.size == (size, size)):
        return digits
    converted = nchw_to_nhwc(convert_images(nhwc_to_nchw(digits.images), channels, size))
    return DigitSet(converted, digits.labels, digits.domain, digits.names)


def write_course_layout(
    splits: dict[str, DigitSet], out: str | Path, overwrite: bool = False, progress: bool = True
) -> dict[str, int]:
    """Write ``OUT/data/NNNNN.png`` and one ``{split}.csv`` (``image_name,label``) per labelled split.

    ``OUT/domain.txt`` records the domain's name, since the course layout itself does not.
    Unlabelled splits are written to ``OUT/{split}/`` as a plain folder. Names number the images in
    split order, so reading the folder back returns every split in the order written. The whole folder
    appears at once (written beside ``out``, then renamed), or not at all.
    """

    counts: dict[str, int] = {}
    total = sum(len(s) for s in splits.values())
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "data").mkdir()
        number = 0
        with progress_bar(total, "writing PNG", "img", enabled=progress and total >= 2000) as bar:
            for split, digits in splits.items():
                folder = tmp / ("data" if digits.labelled else split)
                folder.mkdir(exist_ok=True)
                rows = io.StringIO()
                writer = csv.writer(rows, lineterminator="\n")
                writer.writerow(["image_name", "label"])
                for image, label in zip(digits.images, digits.labels):
                    name = f"{number:05d}.png"
                    write_png(folder / name, image)
                    writer.writerow([name, int(label)])
                    number += 1
                    bar.update(1)
                if digits.labelled:
                    (tmp / f"{split}.csv").write_text(rows.getvalue())
                counts[split] = len(digits)
        domain = next(iter(splits.values())).domain if splits else "images"
        (tmp / DOMAIN_FILE).write_text(domain + "\n")
    return counts


def describe(splits: dict[str, DigitSet]) -> str:
    """A text table: per split its count, image size, channels and images per class."""
    lines = []
    domain = next(iter(splits.values())).domain if splits else "?"
    lines.append(f"domain: {domain}")
    header = f"{'split':<11}{'images':>8}  {'size':>7}  {'ch':>2}  " + " ".join(f"{d:>5}" for d in range(10))
    lines.append(header)
    for split, digits in splits.items():
        h, w = digits.size
        counts = digits.class_counts() if digits.labelled else np.full(10, -1)
        per_class = " ".join(f"{int(c):>5}" if c >= 0 else "    -" for c in counts)
        lines.append(f"{split:<11}{len(digits):>8}  {h:>3}x{w:<3}  {digits.channels:>2}  {per_class}")
    return "\n".join(lines)
