"""Interpolating initial noise tensors: spherical (slerp) and linear (lerp).

    slerp(x0, x1, a) = sin((1 - a) theta) / sin(theta) x0 + sin(a theta) / sin(theta) x1,
    theta = arccos(<x0, x1> / (|x0| |x1|))

Gaussian noise in high dimension lies near a sphere; slerp stays near it, lerp cuts through its inside
(lower-norm noise, hence the washed-out middle images of the linear row).
"""

from __future__ import annotations

import torch

# Below this angle sin(theta) loses precision; the arc is then indistinguishable from the chord.
PARALLEL_THETA = 1e-4


def lerp(x0: torch.Tensor, x1: torch.Tensor, alpha: float) -> torch.Tensor:
    """(1 - alpha) x0 + alpha x1."""
    return (1.0 - alpha) * x0 + alpha * x1


def slerp(x0: torch.Tensor, x1: torch.Tensor, alpha: float) -> torch.Tensor:
    """Spherical interpolation over all elements; exact at alpha 0 and 1, linear for nearly parallel inputs."""
    if alpha == 0.0:
        return x0.clone()
    if alpha == 1.0:
        return x1.clone()
    a, b = x0.double().flatten(), x1.double().flatten()
    cosine = torch.dot(a, b) / (a.norm() * b.norm())
    theta = torch.arccos(cosine.clamp(-1.0, 1.0))
    if float(theta) < PARALLEL_THETA:
        return lerp(x0, x1, alpha)
    sin_theta = torch.sin(theta)
    w0 = torch.sin((1.0 - alpha) * theta) / sin_theta
    w1 = torch.sin(alpha * theta) / sin_theta
    return (w0 * x0.double() + w1 * x1.double()).to(x0.dtype)
