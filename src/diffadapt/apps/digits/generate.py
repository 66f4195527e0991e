"""Class-conditional digit generation: the graded 1,000 images, the 10x10 grid and the reverse process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from diffadapt.diffusion.guidance import Guidance, GuidedModel
from diffadapt.diffusion.models import LoadedModel
from diffadapt.diffusion.sampler import SamplerConfig, sample
from diffadapt.errors import InputError
from diffadapt.images import model_to_uint8, nchw_to_nhwc
from diffadapt.io import atomic_dir, write_png

NUM_DIGITS = 10


def initial_noise(count: int, shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """(count, C, H, W) float32 x_T from a CPU generator: the same for a seed on every device and batch size."""
    return torch.randn((count, *shape), generator=torch.Generator().manual_seed(seed))


def step_noise_generators(seed: int, indices: Sequence[int], device: torch.device) -> list[torch.Generator]:
    """One generator per image for the per-step noise of stochastic samplers (DDPM, DDIM with eta > 0),
    seeded by (seed, image index): an image is the same whatever the batch size or the images beside it."""
    return [torch.Generator(device=device).manual_seed(seed * 2**24 + int(i) + 1) for i in indices]


def sample_digits(
    loaded: LoadedModel,
    labels: torch.Tensor,
    x_T: torch.Tensor,
    sampler: SamplerConfig,
    guidance: Guidance | float,
    seed: int,
    batch_size: int = 500,
    progress: bool = True,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    indices: Sequence[int] | None = None,
) -> torch.Tensor:
    """Generate one image per label from x_T (N, C, H, W); returns (N, C, H, W) float32 in [-1, 1] (clipped)
    on the CPU.

    ``indices`` name the images for their per-step noise (default 0 .. N-1; see :func:`step_noise_generators`);
    ``callback(batch_index, t, x)`` sees each batch's reverse process (see ``sampler.Callback``).
    """
    device = loaded.device
    null = loaded.model_config.null_label
    if null is None:
        raise InputError("an unconditional model cannot generate digits of a class")
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    indices = list(range(len(labels))) if indices is None else list(indices)
    starts = list(range(0, len(labels), batch_size))
    steps = len(sampler.timesteps(loaded.schedule))
    bar = tqdm(total=len(starts) * steps, desc=f"generating {len(labels)} images", unit="step", disable=not progress, leave=False, dynamic_ncols=True)
    outputs = []
    for batch_index, start in enumerate(starts):
        batch_labels = labels[start : start + batch_size].to(device)
        noise = x_T[start : start + batch_size].to(device)
        if device.type == "cuda":
            noise = noise.contiguous(memory_format=torch.channels_last)
        guided = GuidedModel(loaded.model, batch_labels, guidance, null)

        def eps_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with loaded.autocast():
                return guided(x, t)

        step_callback = None
        if callback is not None:
            step_callback = lambda t, x, b=batch_index: callback(b, t, x)  # noqa: E731
        generators = step_noise_generators(seed, indices[start : start + batch_size], device)
        x0 = sample(eps_model, noise, loaded.schedule, sampler, generators, step_callback, progress=bar if progress else False)
        outputs.append(x0.clamp(-1, 1).cpu())
    bar.close()
    return torch.cat(outputs)


def graded_labels(per_class: int) -> torch.Tensor:
    """0 x per_class, 1 x per_class, ...: the order of the graded file names."""
    return torch.arange(NUM_DIGITS).repeat_interleave(per_class)


def graded_names(per_class: int) -> list[str]:
    """``{digit}_{index:03d}.png`` with index from 001, as the course grades them."""
    return [f"{digit}_{index:03d}.png" for digit in range(NUM_DIGITS) for index in range(1, per_class + 1)]


def to_images(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) float in [-1, 1] -> (N, H, W, C) uint8."""
    return nchw_to_nhwc(model_to_uint8(x))


def write_graded_folder(out_dir: Path, images: np.ndarray, names: list[str], overwrite: bool = False) -> None:
    """Write exactly ``names`` into out_dir, atomically (the folder appears complete or not at all)."""

    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for name, image in zip(names, images):
            write_png(tmp / name, image)
