"""Image value and layout conventions, in one place: uint8 <-> model scale, NHWC <-> NCHW.

Conventions used across the toolkit:
- uint8 images are (N, H, W, C) numpy arrays or (N, C, H, W) tensors with values in [0, 255];
- model inputs and outputs are float tensors (N, C, H, W) with values in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch


def uint8_to_model(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) uint8 in [0, 255] -> float32 in [-1, 1]."""
    return images.float().mul_(2.0 / 255.0).sub_(1.0)


def model_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float in [-1, 1] (values outside are clipped) -> uint8 in [0, 255], rounded."""
    return ((images.detach().float().clamp(-1.0, 1.0) + 1.0) * 127.5).round_().to(torch.uint8)


def minmax_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) float of any range -> uint8, min-max normalised per image over all its pixels.

    This is how the course saves DDIM face samples: ``x = (x - min) / (max - min)``, then
    ``round(x * 255)``.
    """
    flat = images.detach().double().flatten(1)
    low = flat.min(dim=1, keepdim=True).values
    high = flat.max(dim=1, keepdim=True).values
    scaled = (flat - low) / (high - low).clamp_min(1e-12)
    return (scaled * 255.0).round_().to(torch.uint8).view_as(images)


def nchw_to_nhwc(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) uint8 tensor -> (N, H, W, C) uint8 numpy array."""
    return images.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def model_to_nhwc(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) float in [-1, 1] (clipped) -> (N, H, W, C) uint8 numpy array: samples as images."""
    return nchw_to_nhwc(model_to_uint8(images))


def nhwc_to_nchw(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, C) uint8 numpy array -> (N, C, H, W) uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()
