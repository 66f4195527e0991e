"""Classifier-free guidance (Ho & Salimans, 2022).

    eps = eps_uncond + s * (eps_cond - eps_uncond)

s = 1 is the plain conditional model, s = 0 the unconditional one, s > 1 pushes samples towards the
class. Much course code writes the same thing as ``(1 + w) * eps_cond - w * eps_uncond``: that is this
formula with s = 1 + w (w = 0 is unguided, the report's w = 2 is s = 3).
"""

from __future__ import annotations

import torch
from torch import nn


def guided_epsilon(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """eps_uncond + s (eps_cond - eps_uncond), computed in float32 whatever the model's dtype."""
    eps_cond, eps_uncond = eps_cond.float(), eps_uncond.float()
    return eps_uncond + scale * (eps_cond - eps_uncond)


class GuidedModel(nn.Module):
    """Wrap a conditional eps-model into an eps(x, t) callable for fixed labels and guidance scale.

    Both halves run in one batched forward: the input is duplicated and the second half gets the null
    label, which costs one launch sequence instead of two.
    """

    def __init__(self, model: nn.Module, labels: torch.Tensor, scale: float, null_label: int) -> None:
        super().__init__()
        self.model = model
        self.labels = labels
        self.scale = float(scale)
        self.null_label = null_label

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return self.model(x, t, self.labels).float()
        if self.scale == 0.0:
            return self.model(x, t, torch.full_like(self.labels, self.null_label)).float()
        both = self.model(
            torch.cat([x, x]), torch.cat([t, t]), torch.cat([self.labels, torch.full_like(self.labels, self.null_label)])
        )
        eps_cond, eps_uncond = both.chunk(2)
        return guided_epsilon(eps_cond, eps_uncond, self.scale)
