"""Domain-adversarial training (Ganin et al., JMLR 2016).

    loss = CE(C(F(x_s)), y_s) + CE(D(GRL_lambda(F([x_s; x_t]))), [0...0; 1...1])

The gradient reversal layer makes F maximise the domain classifier D's loss while D minimises it, so
F learns features that predict the label but not the domain. Schedules of the paper, p = training progress
in [0, 1]:
    lambda_p = 2 / (1 + exp(-gamma p)) - 1            (gamma = 10)
    mu_p     = mu_0 / (1 + alpha p)^beta               (alpha = 10, beta = 0.75)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def reversal_coefficient(progress: float, gamma: float = 10.0, maximum: float = 1.0) -> float:
    """lambda_p = 2 / (1 + exp(-gamma p)) - 1, scaled to ``maximum``."""
    return maximum * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


def annealed_lr(lr0: float, progress: float, alpha: float = 10.0, beta: float = 0.75) -> float:
    """mu_p = mu_0 / (1 + alpha p)^beta."""
    return lr0 / (1.0 + alpha * progress) ** beta


def domain_adversarial_loss(domain_logits: torch.Tensor, source_count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CE of the domain classifier on [source; target] features (labels 0 then 1); returns (loss, accuracy)."""
    labels = torch.ones(domain_logits.shape[0], dtype=torch.int64, device=domain_logits.device)
    labels[:source_count] = 0
    loss = F.cross_entropy(domain_logits, labels)
    accuracy = (domain_logits.argmax(1) == labels).float().mean()
    return loss, accuracy


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean prediction entropy; minimised on target images it pushes decision boundaries away from them."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(1).mean()
