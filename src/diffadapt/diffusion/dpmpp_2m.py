"""DPM-Solver++(2M) (Lu et al., 2022, "DPM-Solver++", Algorithm 2): multistep, second order, data prediction.

In the notation of the paper, for the variance-preserving process x_t = alpha_t x_0 + sigma_t eps:
    alpha_t  = sqrt(alpha_bar_t),   sigma_t = sqrt(1 - alpha_bar_t)
    lambda_t = log(alpha_t / sigma_t)                   (half the log-SNR; grows as the noise falls)
    x0_t     = x0_theta(x_t, t)                          (the data prediction, from the model's eps)
A step goes from the current point s to the next point t, h = lambda_t - lambda_s > 0.

First order (exactly DDIM with eta = 0 when x0_s is not clipped):
    x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) x0_s
Second order, multistep ("midpoint"), with the point r visited before s:
    r_s = h_r / h,   h_r = lambda_s - lambda_r
    D   = (1 + 1 / (2 r_s)) x0_s - 1 / (2 r_s) x0_r      (= D0 + D1 / 2, D0 = x0_s, D1 = (x0_s - x0_r) / r_s)
    x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) D

The stochastic variant, DPM-Solver++(2M) SDE (Lu et al., 2022, section 5 / diffusers' ``sde-dpmsolver++``),
solves the reverse SDE instead of the probability-flow ODE with the same data predictions, adding fresh
noise z ~ N(0, I) every step:
    x_t = (sigma_t / sigma_s) e^{-h} x_s + alpha_t (1 - e^{-2h}) D + sigma_t sqrt(1 - e^{-2h}) z
with D = x0_s at first order and D = D0 + D1 / 2 as above at second order. Like DDPM's ancestral steps it
corrects the model's errors along the way, which an undertrained model's deterministic samples keep.

As diffusers' DPMSolverMultistepScheduler with its defaults (solver_order=2, algorithm_type="dpmsolver++",
solver_type="midpoint", lower_order_final=True, final_sigmas_type="zero"): the first step is first order
(there is no history yet), and so is the last one, which goes to sigma = 0 (alpha_bar = 1, lambda = +inf,
e^{-h} = 0): it returns the data prediction x0_s itself. All coefficients are computed in float64.
"""

from __future__ import annotations

import math

import torch


def vp_coefficients(alpha_bar: float) -> tuple[float, float, float]:
    """(alpha_t, sigma_t, lambda_t) of the module docstring in float64; lambda = +inf at alpha_bar = 1."""
    alpha, sigma = alpha_bar**0.5, (1.0 - alpha_bar) ** 0.5
    return alpha, sigma, math.log(alpha / sigma) if sigma > 0 else math.inf


def dpmpp_2m_order(index: int, num_steps: int) -> int:
    """The order of step ``index`` (0-based) of ``num_steps``: 1 at the first and the last step, else 2."""
    return 1 if index == 0 or index == num_steps - 1 else 2


def multistep_data(x0: torch.Tensor, lambda_s: float, h: float, x0_earlier: torch.Tensor | None,
                   alpha_bar_earlier: float | None) -> torch.Tensor:
    """D = (1 + 1/(2 r)) x0_s - 1/(2 r) x0_r with r = h_r / h (second order), or x0_s alone (first order); fp32."""
    data = x0.float()
    if x0_earlier is None:
        return data
    if alpha_bar_earlier is None:
        raise ValueError("a second-order step needs alpha_bar at the earlier point")
    if math.isinf(h):
        # r = h_r / h would be 0: diffusers' final_sigmas_type "zero" always ends in a first-order step.
        raise ValueError("the step to sigma = 0 must be first order")
    r = (lambda_s - vp_coefficients(alpha_bar_earlier)[2]) / h
    return (1.0 + 0.5 / r) * data - (0.5 / r) * x0_earlier.float()


def dpmpp_2m_step(
    x: torch.Tensor,
    x0: torch.Tensor,
    alpha_bar: float,
    alpha_bar_next: float,
    x0_earlier: torch.Tensor | None = None,
    alpha_bar_earlier: float | None = None,
) -> torch.Tensor:
    """One DPM-Solver++ step x_s -> x_t; pure: the caller keeps the history of data predictions.

    Args:
        x: (B, C, H, W) the sample x_s at the current point s.
        x0: (B, C, H, W) its data prediction x0_s (clipped or not, as the caller chose).
        alpha_bar, alpha_bar_next: alpha_bar at s and at the next point t (1.0 after the last step).
        x0_earlier, alpha_bar_earlier: x0_r and alpha_bar at the point r visited before s; given, the step
            is second order, else first order.
    Returns:
        (B, C, H, W) x_t in x's dtype.
    """
    _, sigma_s, lambda_s = vp_coefficients(alpha_bar)
    alpha_t, sigma_t, lambda_t = vp_coefficients(alpha_bar_next)
    h = lambda_t - lambda_s
    data = multistep_data(x0, lambda_s, h, x0_earlier, alpha_bar_earlier)
    return (sigma_t / sigma_s * x.float() - alpha_t * math.expm1(-h) * data).to(x.dtype)


def dpmpp_2m_sde_step(
    x: torch.Tensor,
    x0: torch.Tensor,
    alpha_bar: float,
    alpha_bar_next: float,
    noise: torch.Tensor,
    x0_earlier: torch.Tensor | None = None,
    alpha_bar_earlier: float | None = None,
) -> torch.Tensor:
    """One DPM-Solver++(2M) SDE step x_s -> x_t (the module docstring's formula); pure: the caller supplies z,
    (B, C, H, W) like x (unused after the last step, where sigma_t = 0). Other args as :func:`dpmpp_2m_step`."""
    _, sigma_s, lambda_s = vp_coefficients(alpha_bar)
    alpha_t, sigma_t, lambda_t = vp_coefficients(alpha_bar_next)
    h = lambda_t - lambda_s
    data = multistep_data(x0, lambda_s, h, x0_earlier, alpha_bar_earlier)
    decay = math.exp(-h)  # e^{-h}; 0 after the last step (h = inf)
    x_t = sigma_t / sigma_s * decay * x.float() - alpha_t * math.expm1(-2.0 * h) * data
    if sigma_t > 0:
        x_t = x_t + sigma_t * math.sqrt(-math.expm1(-2.0 * h)) * noise.float()
    return x_t.to(x.dtype)
