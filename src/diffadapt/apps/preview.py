"""A labelled sample grid of several domains (rows) for a first look at the data."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diffadapt.data.memory import convert_images
from diffadapt.data.sources import read_source
from diffadapt.errors import InputError
from diffadapt.images import nchw_to_nhwc, nhwc_to_nchw
from diffadapt.viz.grid import save_grid


def preview_grid(sources: Sequence[str], out: str | Path, per_domain: int = 16, seed: int = 0, size: int = 28) -> Path:
    """One row per source: ``per_domain`` images drawn at random from its train split (else its first)."""
    if not 1 <= per_domain <= 256:
        raise InputError(f"per-domain count must be in 1..256, got {per_domain}")
    if not sources or len(sources) > 32:
        raise InputError(f"preview 1 to 32 sources, got {len(sources)}")
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
