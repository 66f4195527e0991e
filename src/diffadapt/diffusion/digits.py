"""Class-conditional digit generation: the graded 1,000 images, the 10x10 grid and the reverse process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from diffadapt.diffusion.guidance import Guidance, GuidedModel
from diffadapt.diffusion.models import LoadedModel
from diffadapt.diffusion.sampler import SamplerConfig, sample
from diffadapt.viz.images import model_to_uint8, nchw_to_nhwc

NUM_DIGITS = 10


def initial_noise(count: int, shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """(count, C, H, W) float32 x_T from a CPU generator: the same for a seed on every device and batch size."""
    return torch.randn((count, *shape), generator=torch.Generator().manual_seed(seed))


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
) -> torch.Tensor:
    """Generate one image per label; returns (N, C, H, W) float32 in [-1, 1] (clipped) on the CPU.

    ``callback(batch_index, t, x)`` sees each batch's reverse process (see ``sampler.Callback``).
    """
    device = loaded.device
    outputs = []
    null = loaded.model_config.null_label
    if null is None:
        raise ValueError("an unconditional model cannot generate digits of a class")
    from tqdm import tqdm

    starts = list(range(0, len(labels), batch_size))
    # Per-step noise (DDPM, DDIM eta > 0) comes from one device generator, so a seed fixes every file.
    generator = torch.Generator(device=device).manual_seed(seed + 1)
    for batch_index, start in enumerate(tqdm(starts, desc="generating", unit="batch", disable=not progress or len(starts) < 2, leave=False)):
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
        x0 = sample(eps_model, noise, loaded.schedule, sampler, generator, step_callback, progress=progress and len(starts) == 1)
        outputs.append(x0.clamp(-1, 1).cpu())
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
    from diffadapt.viz.atomic import atomic_dir
    from diffadapt.viz.images import save_png_unchecked

    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        for name, image in zip(names, images):
            save_png_unchecked(tmp / name, image)
