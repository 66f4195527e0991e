"""A labelled sample grid of several domains (rows) for a first look at the data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diffadapt.data.memory import convert_images
from diffadapt.data.sources import read_source
from diffadapt.images import nchw_to_nhwc, nhwc_to_nchw
from diffadapt.viz.grid import save_grid


def preview_grid(sources: Sequence[str], out: str | Path, per_domain: int = 16, seed: int = 0, size: int = 28) -> Path:
    """One row per source: the first ``per_domain`` images of a class-balanced draw from its first split."""
    rows, labels = [], []
    rng = np.random.default_rng(seed)
    for source in sources:
        splits = read_source(source, seed=seed, progress=False)
        digits = splits.get("train") or next(iter(splits.values()))
        index = rng.choice(len(digits), size=min(per_domain, len(digits)), replace=False)
        chosen = digits.subset(np.sort(index))
        images = convert_images(nhwc_to_nchw(chosen.images), channels=3, size=size)
        tiles = nchw_to_nhwc(images)
        if len(tiles) < per_domain:
            tiles = np.concatenate([tiles, np.full((per_domain - len(tiles), *tiles.shape[1:]), 255, np.uint8)])
        rows.append(tiles)
        labels.append(digits.domain)
    return save_grid(out, np.concatenate(rows), per_domain, row_labels=labels, scale=2)
