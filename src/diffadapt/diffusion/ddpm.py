"""DDPM ancestral sampling step (Ho et al., 2020, Algorithm 2), written through the predicted x_0.

    x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)          (optionally clipped to [-1, 1])
    mu_t   = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x0_hat
             + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
    x_{t-1} = mu_t + sigma_t z,   z ~ N(0, I), no noise at t = 0

Without clipping, mu_t equals the paper's 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - alpha_bar_t) eps).
sigma_t^2 is either beta_t ("beta", the paper's first choice) or the posterior variance
beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t ("posterior", diffusers' "fixed_small").
"""

from __future__ import annotations

import torch

from diffadapt.diffusion.schedule import LinearSchedule, predict_x0


def ddpm_step(
    x_t: torch.Tensor,
    eps: torch.Tensor,
    t: int,
    schedule: LinearSchedule,
    noise: torch.Tensor | None,
    variance: str = "posterior",
    clip_x0: bool = False,
) -> torch.Tensor:
    """One reverse step x_t -> x_{t-1}; pure: the caller supplies the noise z (ignored at t = 0)."""
    beta_t = float(schedule.betas[t])
    alpha_t = float(schedule.alphas[t])
    alpha_bar_t = float(schedule.alpha_bars[t])
    alpha_bar_prev = float(schedule.alpha_bars[t - 1]) if t > 0 else 1.0
    x0 = predict_x0(x_t, eps, alpha_bar_t)
    if clip_x0:
        x0 = x0.clamp(-1.0, 1.0)
    coef_x0 = alpha_bar_prev**0.5 * beta_t / (1.0 - alpha_bar_t)
    coef_xt = alpha_t**0.5 * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t)
    mean = coef_x0 * x0 + coef_xt * x_t.float()
    if t == 0:
        return mean.to(x_t.dtype)
    if variance == "beta":
        sigma = beta_t**0.5
    elif variance == "posterior":
        sigma = ((1.0 - alpha_bar_prev) / (1.0 - alpha_bar_t) * beta_t) ** 0.5
    else:
        raise ValueError(f"unknown variance {variance!r} (beta or posterior)")
    if noise is None:
        raise ValueError("a DDPM step at t > 0 needs noise")
    return (mean + sigma * noise.float()).to(x_t.dtype)
