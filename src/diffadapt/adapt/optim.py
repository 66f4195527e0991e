"""The optimiser and the schedules of the founding report (Ganin et al., JMLR 2016), p = training progress
in [0, 1]:

    mu_p     = mu_0 / (1 + alpha p)^beta               (alpha = 10, beta = 0.75)   learning rate
    lambda_p = 2 / (1 + exp(-gamma p)) - 1             (gamma = 10)                adversarial weight

Schedules are plain functions of p; the trainer evaluates them and hands the values to the optimiser and
the method explicitly, every step.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def annealed_lr(lr0: float, progress: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    """mu_p = mu_0 / (1 + alpha p)^beta."""
    return lr0 / (1.0 + alpha * progress) ** beta


def reversal_coefficient(progress: float, gamma: float = 10.0, maximum: float = 1.0) -> float:
    """lambda_p = 2 / (1 + exp(-gamma p)) - 1, scaled to ``maximum``."""
    return maximum * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


class TensorSGD:
    """SGD with momentum whose learning rate is a device tensor, so a captured step reads the current value.

    Same update as torch.optim.SGD (dampening 0): buf = momentum * buf + (grad + wd * p); p -= lr * buf.
    """

    def __init__(self, params: list[nn.Parameter], momentum: float, weight_decay: float, device: torch.device) -> None:
        self.params = params
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.buffers = [torch.zeros_like(p) for p in params]
        self.lr = torch.zeros((), device=device)

    @torch.no_grad()
    def step(self) -> None:
        params = [p for p in self.params if p.grad is not None]
        buffers = [b for p, b in zip(self.params, self.buffers) if p.grad is not None]
        grads = [p.grad for p in params]
        if self.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        torch._foreach_mul_(buffers, self.momentum)
        torch._foreach_add_(buffers, grads)
        torch._foreach_add_(params, torch._foreach_mul(buffers, -self.lr))

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
