"""DDIM sampling step (Song, Meng & Ermon, 2021, eq. 12 and 16).

    x0_hat     = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)
    sigma_t    = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)
    x_prev     = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev - sigma_t^2) eps + sigma_t z

eta = 0 is deterministic DDIM, eta = 1 has DDPM's variance. alpha_bar_prev is the value at the next
(smaller) timestep of the chosen sub-sequence, and 1 after the last step (diffusers' set_alpha_to_one).
All coefficients are computed in float64 before being applied.
"""

from __future__ import annotations

import torch

from diffadapt.diffusion.schedule import predict_x0


def ddim_sigma(alpha_bar_t: float, alpha_bar_prev: float, eta: float) -> float:
    """sigma_t of DDIM eq. 16, in float64."""
    return eta * ((1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)) ** 0.5 * (1.0 - alpha_bar_t / alpha_bar_prev) ** 0.5


def ddim_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    alpha_bar_t: float,
    alpha_bar_prev: float,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    clip_x0: bool = False,
) -> torch.Tensor:
    """One DDIM update x_t -> x_prev; pure: the caller supplies z when eta > 0."""
    sigma = ddim_sigma(alpha_bar_t, alpha_bar_prev, eta)
    x0 = predict_x0(x_t, eps, alpha_bar_t)
    if clip_x0:
        x0 = x0.clamp(-1.0, 1.0)
    direction = max(1.0 - alpha_bar_prev - sigma**2, 0.0) ** 0.5
    x_prev = alpha_bar_prev**0.5 * x0 + direction * eps.float()
    if sigma > 0:
        if noise is None:
            raise ValueError("DDIM with eta > 0 needs noise")
        x_prev = x_prev + sigma * noise.float()
    return x_prev.to(x_t.dtype)
