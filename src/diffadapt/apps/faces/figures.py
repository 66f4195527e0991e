"""The founding report's two DDIM figures: the eta grid and the slerp / linear interpolation rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from diffadapt.diffusion.interpolate import lerp, slerp
from diffadapt.diffusion.noise_model import NoiseModel, sample_batched
from diffadapt.diffusion.sampler import SamplerMethod
from diffadapt.diffusion.sampling import SamplingSettings
from diffadapt.diffusion.timesteps import Spacing
from diffadapt.errors import InputError
from diffadapt.viz.grid import save_grid

ETAS = (0.0, 0.25, 0.5, 0.75, 1.0)
ALPHAS = tuple(round(0.1 * k, 1) for k in range(11))
ImageRule = Callable[[torch.Tensor], np.ndarray]


def _scale_for(size: int) -> int:
    return max(1, 96 // size)


def eta_grid(
    model: NoiseModel, noises: torch.Tensor, noise_names: Sequence[str], to_images: ImageRule, out: Path,
    *, steps: int, spacing: Spacing, etas: Sequence[float] = ETAS, seed: int = 0, title: str | None = None,
) -> Path:
    """Rows: DDIM with each eta; columns: the given noises (N, C, H, W). Every row's per-step noise comes from
    the same seed, so rows differ by eta alone."""
    rows = []
    for eta in etas:
        sampler = SamplingSettings(method="ddim", steps=steps, eta=eta, spacing=spacing, clip_x0=model.clip_x0).sampler_config(model.schedule)
        rows.append(to_images(sample_batched(model, noises, sampler, seed=seed, progress=False)))
    images = np.concatenate(rows)
    return save_grid(
        out, images, len(noises), row_labels=[f"eta={e:g}" for e in etas], col_labels=list(noise_names),
        scale=_scale_for(images.shape[1]), title=title,
    )


def interpolation_rows(
    model: NoiseModel, noise_a: torch.Tensor, noise_b: torch.Tensor, to_images: ImageRule, out: Path,
    *, steps: int, spacing: Spacing, alphas: Sequence[float] = ALPHAS, method: SamplerMethod | None = None, title: str | None = None,
) -> Path:
    """Two rows, slerp then linear, of deterministic samples (DDIM eta 0, or another deterministic solver)
    from noises interpolated between noise_a and noise_b (1, C, H, W), one column per alpha; ``method`` None:
    SamplerConfig's."""
    slerped = torch.cat([slerp(noise_a, noise_b, a) for a in alphas])
    lerped = torch.cat([lerp(noise_a, noise_b, a) for a in alphas])
    sampler = SamplingSettings(method=method, steps=steps, eta=0.0, spacing=spacing, clip_x0=model.clip_x0).sampler_config(model.schedule)
    if sampler.method == "ddpm":
        raise InputError("interpolation needs a deterministic sampler (ddim, dpmpp-2m or unipc), not ddpm")
    images = to_images(sample_batched(model, torch.cat([slerped, lerped]), sampler, progress=False))
    return save_grid(
        out, images, len(alphas), row_labels=["slerp", "linear"], col_labels=[f"{a:g}" for a in alphas],
        scale=_scale_for(images.shape[1]), title=title,
    )
