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

SPACINGS = ("leading", "trailing", "linspace")


def ddim_timesteps(num_train_timesteps: int, num_steps: int, spacing: str = "leading") -> list[int]:
    """The timesteps a DDIM sampler visits, largest first.

    - ``leading`` (the course's, diffusers' default): k * (T // n) for k = n-1 .. 0, e.g. 980, 960, ..., 0
      for T = 1000 and n = 50;
    - ``trailing``: T - 1 - k * (T / n) rounded, so the first step starts at T - 1 (pure noise);
    - ``linspace``: n values evenly spaced from T - 1 down to 0, rounded.
    """
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"steps must be in 1..{num_train_timesteps}, got {num_steps}")
    if spacing == "leading":
        stride = num_train_timesteps // num_steps
        steps = [k * stride for k in range(num_steps)]
    elif spacing == "trailing":
        stride = num_train_timesteps / num_steps
        steps = sorted({int(round(num_train_timesteps - k * stride)) - 1 for k in range(num_steps)})
    elif spacing == "linspace":
        steps = sorted({int(round(v)) for v in torch.linspace(0, num_train_timesteps - 1, num_steps, dtype=torch.float64).tolist()})
    else:
        raise ValueError(f"unknown spacing {spacing!r} (one of {', '.join(SPACINGS)})")
    return sorted(steps, reverse=True)


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
    x_t32, eps32 = x_t.float(), eps.float()
    x0 = (x_t32 - (1.0 - alpha_bar_t) ** 0.5 * eps32) / alpha_bar_t**0.5
    if clip_x0:
        x0 = x0.clamp(-1.0, 1.0)
    direction = max(1.0 - alpha_bar_prev - sigma**2, 0.0) ** 0.5
    x_prev = alpha_bar_prev**0.5 * x0 + direction * eps32
    if sigma > 0:
        if noise is None:
            raise ValueError("DDIM with eta > 0 needs noise")
        x_prev = x_prev + sigma * noise.float()
    return x_prev.to(x_t.dtype)
