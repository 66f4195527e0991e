"""The founding report's two DDIM figures: the eta grid and the slerp / linear interpolation rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from diffadapt.apps.faces.models import NoiseModel, ddim_faces
from diffadapt.diffusion.interpolate import lerp, slerp
from diffadapt.viz.grid import save_grid

ETAS = (0.0, 0.25, 0.5, 0.75, 1.0)
ALPHAS = tuple(round(0.1 * k, 1) for k in range(11))
ImageRule = Callable[[torch.Tensor], np.ndarray]


def _scale_for(size: int) -> int:
    return max(1, 96 // size)


def eta_grid(
    model: NoiseModel, noises: torch.Tensor, noise_names: Sequence[str], to_images: ImageRule, out: Path,
    etas: Sequence[float] = ETAS, steps: int = 50, seed: int = 0, title: str | None = None,
) -> Path:
    """Rows: eta; columns: the given noises. Each row's per-step noise comes from the same seed."""
    rows = []
    for eta in etas:
        rows.append(to_images(ddim_faces(model, noises, steps=steps, eta=eta, seed=seed, progress=False)))
    images = np.concatenate(rows)
    return save_grid(
        out, images, len(noises), row_labels=[f"eta={e:g}" for e in etas], col_labels=list(noise_names),
        scale=_scale_for(images.shape[1]), title=title,
    )


def interpolation_rows(
    model: NoiseModel, noise_a: torch.Tensor, noise_b: torch.Tensor, to_images: ImageRule, out: Path,
    alphas: Sequence[float] = ALPHAS, steps: int = 50, title: str | None = None,
) -> Path:
    """Two rows, slerp then linear, of DDIM (eta 0) images from interpolated noises, one column per alpha."""
    slerped = torch.cat([slerp(noise_a, noise_b, a) for a in alphas])
    lerped = torch.cat([lerp(noise_a, noise_b, a) for a in alphas])
    images = to_images(ddim_faces(model, torch.cat([slerped, lerped]), steps=steps, eta=0.0, progress=False))
    return save_grid(
        out, images, len(alphas), row_labels=["slerp", "linear"], col_labels=[f"{a:g}" for a in alphas],
        scale=_scale_for(images.shape[1]), title=title,
    )
