"""Augmentations for normalised digit batches, all device ops of fixed shape (so a CUDA graph can hold them).

- :func:`weak`: a random shift of up to 2 pixels and random grayscale (the ``matched`` recipe's);
- :func:`strong`: FixMatch's strong view for digits: a random affine map (rotation, scale, shear, shift),
  random contrast, brightness and colour inversion, channel shuffle, and a cut-out square.

Every random draw comes from the global generator, seeded by the trainer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from diffadapt.data.memory import LUMA


def _affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _uniform(b: int, x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return torch.rand(b, device=x.device, dtype=x.dtype) * (high - low) + low


def grayscale(x: torch.Tensor, probability: float) -> torch.Tensor:
    """Each RGB image replaced by its BT.601 luma (in all three channels) with ``probability``."""
    if x.shape[1] != 3 or probability <= 0:
        return x
    luma = x[:, 0:1] * LUMA[0] + x[:, 1:2] * LUMA[1] + x[:, 2:3] * LUMA[2]
    gray = (torch.rand(x.shape[0], 1, 1, 1, device=x.device) < probability).to(x.dtype)
    return gray * luma.expand_as(x) + (1 - gray) * x


def weak(x: torch.Tensor, max_shift: float = 2.0, grayscale_p: float = 0.25) -> torch.Tensor:
    """(B, C, H, W) -> the same shape: random translation by up to ``max_shift`` pixels (bilinear, border
    padding), then random grayscale."""
    b, _, h, w = x.shape
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, 0, 2] = (torch.rand(b, device=x.device, dtype=x.dtype) * 2 - 1) * (2 * max_shift / w)
    theta[:, 1, 2] = (torch.rand(b, device=x.device, dtype=x.dtype) * 2 - 1) * (2 * max_shift / h)
    return grayscale(_affine(x, theta), grayscale_p)


def strong(x: torch.Tensor, max_rotation: float = 20.0, scale: tuple[float, float] = (0.8, 1.15), max_shear: float = 0.25,
           max_shift: float = 3.0, invert_p: float = 0.3, cutout: int = 8) -> torch.Tensor:
    """(B, C, H, W) normalised images -> a strongly distorted view of each (same shape).

    Geometry: rotation up to ``max_rotation`` degrees, isotropic scale in ``scale``, shear up to
    ``max_shear``, shift up to ``max_shift`` pixels. Appearance, per image: contrast x [0.5, 1.5], brightness
    + [-0.5, 0.5] (in normalised units), inversion with ``invert_p``, a random channel order, grayscale with
    0.25. Then one ``cutout`` x ``cutout`` square set to the image's mean.
    """
    b, c, h, w = x.shape
    angle = _uniform(b, x, -max_rotation, max_rotation) * (math.pi / 180.0)
    zoom = _uniform(b, x, *scale)
    shear = _uniform(b, x, -max_shear, max_shear)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin + shear * cos
    theta[:, 1, 0] = sin
    theta[:, 1, 1] = cos + shear * sin
    theta[:, 0, 2] = _uniform(b, x, -1, 1) * (2 * max_shift / w)
    theta[:, 1, 2] = _uniform(b, x, -1, 1) * (2 * max_shift / h)
    x = _affine(x, theta)

    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = _uniform(b, x, 0.5, 1.5).view(b, 1, 1, 1)
    brightness = _uniform(b, x, -0.5, 0.5).view(b, 1, 1, 1)
    x = (x - mean) * contrast + mean + brightness
    invert = (torch.rand(b, 1, 1, 1, device=x.device) < invert_p).to(x.dtype)
    x = invert * (2 * mean - x) + (1 - invert) * x
    if c == 3:
        order = torch.rand(b, 3, device=x.device).argsort(dim=1)
        x = torch.gather(x, 1, order[:, :, None, None].expand(-1, -1, h, w))
        x = grayscale(x, 0.25)

    if cutout > 0:
        top = torch.randint(0, h - cutout + 1, (b, 1, 1), device=x.device)
        left = torch.randint(0, w - cutout + 1, (b, 1, 1), device=x.device)
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        hole = ((rows >= top) & (rows < top + cutout) & (cols >= left) & (cols < left + cutout)).unsqueeze(1).to(x.dtype)
        x = hole * x.mean(dim=(1, 2, 3), keepdim=True) + (1 - hole) * x
    return x
