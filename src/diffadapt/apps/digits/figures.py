"""The founding report's two digit figures: the 10x10 grid and the reverse-process strip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffadapt.apps.digits.generate import NUM_DIGITS, initial_noise, sample_digits, to_images
from diffadapt.diffusion.guidance import Guidance
from diffadapt.diffusion.models import LoadedModel
from diffadapt.diffusion.sampler import SamplerConfig
from diffadapt.images import model_to_uint8, nchw_to_nhwc
from diffadapt.viz.grid import save_grid

GRID_COLUMNS = 10
REVERSE_FRAMES = 6


def grid_inputs(loaded: LoadedModel, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and x_T of the grid: row d is digit d, column j uses noise j for every digit."""
    cfg = loaded.model_config
    columns = initial_noise(GRID_COLUMNS, (cfg.in_channels, cfg.image_size, cfg.image_size), seed)
    labels = torch.arange(NUM_DIGITS).repeat_interleave(GRID_COLUMNS)
    return labels, columns.repeat(NUM_DIGITS, 1, 1, 1)


def frame_times(visited: list[int], count: int = REVERSE_FRAMES) -> list[int]:
    """``count`` states evenly spread over the visited noise levels, from pure noise to the result (t = 0)."""
    positions = np.linspace(0, len(visited) - 1, count).round().astype(int)
    return [visited[p] for p in positions]


def sample_grid(
    loaded: LoadedModel, sampler: SamplerConfig, guidance: Guidance | float, seed: int, digit: int = 0, progress: bool = True,
) -> tuple[np.ndarray, dict[int, torch.Tensor]]:
    """The grid's (100, H, W, C) uint8 images, and every state of the first image of ``digit`` by noise level.

    One pass serves both figures, so the reverse strip ends in exactly the image the grid shows.
    """
    labels, x_T = grid_inputs(loaded, seed)
    index = int(digit) * GRID_COLUMNS
    states: dict[int, torch.Tensor] = {}

    def record(_batch: int, t: int, x: torch.Tensor) -> None:
        states[t] = x[index : index + 1].detach().float().cpu().clone()

    x0 = sample_digits(loaded, labels, x_T, sampler, guidance, seed, batch_size=len(labels), progress=progress, callback=record)
    return to_images(x0), states


def sample_reverse(loaded: LoadedModel, sampler: SamplerConfig, guidance: Guidance | float, seed: int, digit: int = 0,
                   progress: bool = True) -> dict[int, torch.Tensor]:
    """Every state, by noise level, of the grid's first image of ``digit`` (column 0), sampling that image alone:
    its noise and per-step noise are the grid's, so it ends in the image the grid shows."""
    labels, x_T = grid_inputs(loaded, seed)
    index = int(digit) * GRID_COLUMNS
    states: dict[int, torch.Tensor] = {}

    def record(_batch: int, t: int, x: torch.Tensor) -> None:
        states[t] = x.detach().float().cpu().clone()

    sample_digits(loaded, labels[index : index + 1], x_T[index : index + 1], sampler, guidance, seed, batch_size=1,
                  progress=progress, callback=record, indices=[index])
    return states


def save_digit_grid(images: np.ndarray, out: Path) -> Path:
    return save_grid(
        out, images, GRID_COLUMNS, row_labels=[str(d) for d in range(NUM_DIGITS)],
        col_labels=[f"z{j}" for j in range(GRID_COLUMNS)], scale=2,
    )


def save_reverse_strip(states: dict[int, torch.Tensor], out: Path, digit: int = 0) -> Path:
    """Six states from pure noise to the result, labelled with t (intermediate states clipped to [-1, 1])."""
    times = frame_times(sorted(states, reverse=True))
    images = nchw_to_nhwc(model_to_uint8(torch.cat([states[t] for t in times])))
    return save_grid(out, images, len(times), col_labels=[f"t={t}" for t in times], scale=3, title=f"reverse process of digit {digit}")


def digit_grid(loaded: LoadedModel, sampler: SamplerConfig, guidance: Guidance | float, seed: int, out: Path) -> Path:
    images, _ = sample_grid(loaded, sampler, guidance, seed)
    return save_digit_grid(images, out)


def reverse_strip(loaded: LoadedModel, sampler: SamplerConfig, guidance: Guidance | float, seed: int, out: Path, digit: int = 0) -> Path:
    """The grid's first image of ``digit`` (column 0) at six noise levels, labelled with t."""
    return save_reverse_strip(sample_reverse(loaded, sampler, guidance, seed, digit), out, digit)
