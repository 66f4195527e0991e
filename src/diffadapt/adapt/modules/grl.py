"""The gradient reversal layer (Ganin & Lempitsky, 2015): identity forward, -lambda * gradient backward.

lambda is passed in on every call (a tensor, so a captured CUDA graph reads the value of the current step),
never kept in the layer.
"""

from __future__ import annotations

import torch


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(coefficient)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (coefficient,) = ctx.saved_tensors
        return -coefficient * grad, None


def reverse_gradient(x: torch.Tensor, coefficient: torch.Tensor) -> torch.Tensor:
    """x unchanged; the gradient flowing back through it is multiplied by -coefficient (a 0-d tensor)."""
    return _ReverseGradient.apply(x, coefficient)
