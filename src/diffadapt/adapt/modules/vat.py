"""Virtual adversarial training, VAT (Miyato et al., TPAMI 2018): the classifier's prediction should not change
within a small ball around each input, in the direction where it changes most.

    p_i    = softmax(f(x_i))                                    the clean prediction, held constant
    d_i    ~ N(0, I),   d_i <- xi d_i / ||d_i||                 a random start, one power iteration:
    g_i    = grad_d KL(p_i || softmax(f(x_i + d_i)))            ~ H_i d_i, H_i the Hessian of the KL at r = 0
    r_i    = epsilon g_i / ||g_i||                              the virtual adversarial perturbation
    L_v    = mean_i KL(p_i || softmax(f(x_i + r_i)))

Norms are per image over all its pixels; epsilon is the ball's radius in the units of the normalised input.
Every pass here runs with dropout off and batch norm on the batch's statistics without updating the running
ones (:func:`perturbation_passes`): with dropout on, two passes differ by their masks and the gradient would
follow the masks, not the input; the perturbed images should not enter the statistics kept for prediction.

Used by VADA (alignment/vada.py) and DIRT-T (source_free/dirtt.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

# The paper's xi is 1e-6; in float32 the KL of two predictions that close is rounding noise, so the start is
# larger, still far inside the epsilon ball where the KL is quadratic in r (tests/adapt/test_vada_dirtt.py).
POWER_ITERATION_XI = 1e-2


def kl_divergence(reference_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """mean_i KL(softmax(reference_i) || softmax(logits_i)) of (B, K) logits -> 0-d."""
    log_p = F.log_softmax(reference_logits, dim=1)
    return (log_p.exp() * (log_p - F.log_softmax(logits, dim=1))).sum(1).mean()


def _unit_per_image(x: torch.Tensor) -> torch.Tensor:
    return x / x.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(-1, *([1] * (x.dim() - 1)))


@contextmanager
def perturbation_passes(model: nn.Module) -> Iterator[None]:
    """Within: dropout off, batch norm normalising by the batch but leaving its running statistics as they were
    (momentum 0: running = 1 * running + 0 * batch). Everything is restored on the way out."""
    dropouts = [(m, m.training) for m in model.modules() if isinstance(m, (_DropoutNd, nn.Dropout))]
    norms = [(m, m.momentum) for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    try:
        for module, _ in dropouts:
            module.eval()
        for module, _ in norms:
            module.momentum = 0.0
        yield
    finally:
        for module, training in dropouts:
            module.train(training)
        for module, momentum in norms:
            module.momentum = momentum


def virtual_adversarial_loss(model: nn.Module, x: torch.Tensor, radius: float, xi: float = POWER_ITERATION_XI) -> torch.Tensor:
    """L_v of the formula above for a batch x (B, ...) of normalised inputs; ``model`` maps x to (B, K) logits.
    The gradient reaches the model's parameters through the last pass only (p and r are constants there)."""
    with perturbation_passes(model):
        with torch.no_grad():
            reference = model(x)
        start = (xi * _unit_per_image(torch.randn_like(x))).requires_grad_(True)
        (direction,) = torch.autograd.grad(kl_divergence(reference, model(x + start)), start)
        perturbation = radius * _unit_per_image(direction.detach())
        return kl_divergence(reference, model(x + perturbation))
