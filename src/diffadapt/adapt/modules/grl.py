"""The gradient reversal layer (Ganin & Lempitsky, 2015): identity forward, -lambda * gradient backward."""

from __future__ import annotations

import torch
from torch import nn


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(coefficient)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (coefficient,) = ctx.saved_tensors
        return -coefficient * grad, None


class GradientReversal(nn.Module):
    """Reverses and scales gradients by ``coefficient`` (a tensor, so a captured CUDA graph sees updates)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("coefficient", torch.ones(()), persistent=False)

    def set_coefficient(self, value: float) -> None:
        self.coefficient.fill_(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ReverseGradient.apply(x, self.coefficient)
