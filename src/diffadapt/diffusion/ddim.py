"""DDIM sampling step (Song, Meng & Ermon, 2021, eq. 12 and 16).

    x0_hat     = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)
    sigma_t    = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)
    x_prev     = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev - sigma_t^2) eps + sigma_t z

eta = 0 is deterministic DDIM, eta = 1 has DDPM's variance. alpha_bar_prev is the value at the next
(smaller) timestep of the chosen sub-sequence, and 1 after the last step (diffusers' set_alpha_to_one).
All coefficients are computed in float64 before being applied.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch

from diffadapt.diffusion.schedule import predict_x0

Spacing = Literal["leading", "trailing", "linspace", "quadratic"]
SPACINGS: tuple[str, ...] = get_args(Spacing)


def ddim_timesteps(num_train_timesteps: int, num_steps: int, spacing: str = "leading") -> list[int]:
    """The timesteps a DDIM sampler visits, largest first, as diffusers' DDIMScheduler sets them.

    - ``leading`` (the course's, diffusers' default): k * (T // n) for k = n-1 .. 0, e.g. 980, 960, ..., 0
      for T = 1000 and n = 50;
    - ``trailing``: see :func:`trailing_timesteps`; the first step starts at T - 1 (pure noise);
    - ``linspace``: n values evenly spaced from T - 1 down to 0, rounded half to even;
    - ``quadratic``: see :func:`quadratic_timesteps` (no diffusers spacing; their schedulers take it as a
      list of custom timesteps).
    """
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"steps must be in 1..{num_train_timesteps}, got {num_steps}")
    if spacing == "leading":
        stride = num_train_timesteps // num_steps
        return [k * stride for k in range(num_steps - 1, -1, -1)]
    if spacing == "trailing":
        return trailing_timesteps(num_train_timesteps, num_steps)
    if spacing == "linspace":
        return np.linspace(0, num_train_timesteps - 1, num_steps).round()[::-1].astype(np.int64).tolist()
    if spacing == "quadratic":
        return quadratic_timesteps(num_train_timesteps, num_steps)
    raise ValueError(f"unknown spacing {spacing!r} (one of {', '.join(SPACINGS)})")


def trailing_timesteps(num_train_timesteps: int, num_steps: int) -> list[int]:
    """round(T - k T / n) - 1 for k = 0 .. n-1 (half to even), computed as diffusers does, from
    np.arange(T, 0, -T / n): its accumulated stride differs from T / n in the last bits, enough to decide
    ties such as 937.5 (T = 1000, n = 48). That arange sometimes yields an (n + 1)-th value, timestep -1,
    which diffusers then visits; we stop at n."""
    return (np.arange(num_train_timesteps, 0, -num_train_timesteps / num_steps).round()[:num_steps].astype(np.int64) - 1).tolist()


def quadratic_timesteps(num_train_timesteps: int, num_steps: int) -> list[int]:
    """(T - 1) * ((n - k) / n)^2 for k = 0 .. n-1, rounded half to even: e.g. 499, 347, 222, 125, 55, 14 for
    T = 500, n = 6.

    Quadratic in the step index, as the DDIM paper's quadratic sub-sequence (Song et al., 2021, appendix D.2),
    but from T - 1 (pure noise, like ``trailing``): the steps crowd at low noise, so the last model call sees
    a nearly clean sample and the result keeps fine texture that a last call at T / n would average away (the
    measurements are in benchmarks/RESULTS.md). The last step goes to alpha_bar = 1, as with the other
    spacings; the last timestep is (T - 1) / n^2 rounded, 0 only when n > sqrt(2 (T - 1)).

    Raises ValueError when two timesteps round to the same value (T = 500: from n = 55 on; T = 1000: 78).
    The step count's range is its callers' check (:func:`ddim_timesteps`, ``multistep_timesteps``).
    """
    fractions = np.arange(num_steps, 0, -1, dtype=np.float64) / num_steps
    steps = np.round((num_train_timesteps - 1) * fractions**2).astype(np.int64).tolist()
    if len(set(steps)) < len(steps):
        raise ValueError(f"{num_steps} steps of quadratic spacing repeat a timestep of T = {num_train_timesteps}; use fewer steps")
    return steps


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
