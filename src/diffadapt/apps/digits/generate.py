"""Class-conditional digit generation: the graded 1,000 images, the 10x10 grid and the reverse process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from diffadapt.diffusion.guidance import Guidance
from diffadapt.diffusion.models import LoadedModel
from diffadapt.diffusion.noise_model import sample_batched
from diffadapt.diffusion.sampler import SamplerConfig, initial_noise
from diffadapt.images import model_to_nhwc
from diffadapt.io import atomic_dir, check_not_an_input, write_png

NUM_DIGITS = 10
GENERATION_BATCH_SIZE = 100  # images per forward pass; results do not depend on it. Larger batches run slower on the CPU (cache)


def sample_digits(
    loaded: LoadedModel,
    labels: torch.Tensor,
    x_T: torch.Tensor,
    sampler: SamplerConfig,
    guidance: Guidance | float,
    seed: int,
    batch_size: int = GENERATION_BATCH_SIZE,
    progress: bool = True,
    callback: Callable[[int, int, torch.Tensor], None] | None = None,
    indices: Sequence[int] | None = None,
) -> torch.Tensor:
    """Generate one image per label from x_T (N, C, H, W); returns (N, C, H, W) float32 in [-1, 1] (clipped)
    on the CPU.

    ``indices`` name the images for their per-step noise (default 0 .. N-1; see ``sampler.per_sample_generators``);
    ``callback(batch_index, t, x)`` sees each batch's reverse process (see ``sampler.Callback``).
    """
    loaded.check_classes(labels)
    x0 = sample_batched(loaded.noise_model(guidance), x_T, sampler, seed, batch_size, progress, labels=labels, indices=indices,
                        callback=callback, description=f"generating {len(labels)} images")
    return x0.clamp(-1, 1)


def graded_labels(per_class: int) -> torch.Tensor:
    """0 x per_class, 1 x per_class, ...: the order of the graded file names."""
    return torch.arange(NUM_DIGITS).repeat_interleave(per_class)


def graded_names(per_class: int) -> list[str]:
    """``{digit}_{index:03d}.png`` with index from 001, as the course grades them."""
    return [f"{digit}_{index:03d}.png" for digit in range(NUM_DIGITS) for index in range(1, per_class + 1)]


def to_images(x: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) float in [-1, 1] -> (N, H, W, C) uint8."""
    return model_to_nhwc(x)


def generate_images(loaded: LoadedModel, per_class: int, sampler: SamplerConfig, guidance: Guidance, seed: int,
                    batch_size: int = GENERATION_BATCH_SIZE, progress: bool = True) -> tuple[np.ndarray, torch.Tensor]:
    """``per_class`` images of each digit 0..9 in the graded order: ((N, H, W, C) uint8, (N,) labels)."""
    labels = graded_labels(per_class)
    cfg = loaded.model_config
    x_T = initial_noise(len(labels), (cfg.in_channels, cfg.image_size, cfg.image_size), seed)
    return to_images(sample_digits(loaded, labels, x_T, sampler, guidance, seed, batch_size, progress)), labels


def generate_graded(loaded: LoadedModel, out_dir: Path, per_class: int, sampler: SamplerConfig, guidance: Guidance, seed: int,
                    batch_size: int = GENERATION_BATCH_SIZE, overwrite: bool = False, progress: bool = True) -> int:
    """Write ``{digit}_{index:03d}.png`` for ``per_class`` images of each digit, atomically; returns the network
    evaluations each image cost."""
    if loaded.model_file is not None:  # --overwrite would delete the checkpoint with the folder
        check_not_an_input(out_dir, [loaded.model_file.parent], "the output folder", may_lie_inside=True)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:  # checked before the work, removed if it fails
        images, _ = generate_images(loaded, per_class, sampler, guidance, seed, batch_size, progress)
        for name, image in zip(graded_names(per_class), images):
            write_png(tmp / name, image)
    return guidance.forwards(sampler.timesteps(loaded.schedule))
