"""Per-domain normalisation: each domain's images are standardised with its own training statistics.

Used by training, prediction and t-SNE alike, so the three prepare images the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from diffadapt.data.memory import TensorImages
from diffadapt.errors import InputError
from diffadapt.settings import is_finite_number

EVAL_BATCH = 2048  # images per forward when evaluating, predicting or extracting features (memory, not results)


@dataclass
class DomainStats:
    """Per-channel mean and std of a domain's training images in [0, 1]: two (C,) float32 tensors."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def of(cls, data: TensorImages) -> DomainStats:
        mean, std = data.mean_std()
        return cls(mean, std.clamp_min(1e-3))

    def to(self, device: torch.device) -> DomainStats:
        return DomainStats(self.mean.to(device), self.std.to(device))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: Any, channels: int, source: Any = None) -> DomainStats:
        """From a run's saved statistics, checked: ``channels`` finite values each, std positive."""
        try:
            if not all(is_finite_number(v) for v in (*data["mean"], *data["std"])):  # no bools, no ints past a float
                raise ValueError
            mean = torch.tensor(data["mean"], dtype=torch.float32)
            std = torch.tensor(data["std"], dtype=torch.float32)
        except (KeyError, TypeError, ValueError, RuntimeError, OverflowError):
            raise InputError("domain statistics must be {'mean': [...], 'std': [...]} of numbers", source) from None
        if mean.shape != (channels,) or std.shape != (channels,):
            raise InputError(f"domain statistics must have {channels} values each, got {tuple(mean.shape)} and {tuple(std.shape)}", source)
        if not bool(torch.isfinite(mean).all() and torch.isfinite(std).all()) or bool((std <= 0).any()):
            raise InputError("domain statistics must be finite, with a positive std", source)
        # Statistics of pixels in [0, 1]: a mean outside it or a std outside [1e-3, 1] (of() clamps at 1e-3) is
        # not a domain's, and would blow every input up to one predicted label.
        if bool(((mean < 0) | (mean > 1)).any()) or bool(((std < 1e-3) | (std > 1)).any()):
            raise InputError("domain statistics must be of pixels in [0, 1]: mean in 0..1, std in 0.001..1", source)
        return cls(mean, std)


def normalise(images: torch.Tensor, stats: DomainStats) -> torch.Tensor:
    """uint8 (B, C, H, W) in [0, 255] -> float (x / 255 - mean) / std per channel."""
    mean = stats.mean.to(images.device).view(1, -1, 1, 1)
    std = stats.std.to(images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean) / std
