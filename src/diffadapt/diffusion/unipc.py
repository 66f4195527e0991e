"""UniPC (Zhao et al., 2023): the UniP predictor and the UniC corrector, data prediction, B(h) = bh2, order 2.

Symbols as in :mod:`diffadapt.diffusion.dpmpp_2m`: alpha_t, sigma_t, lambda_t = log(alpha_t / sigma_t), the
data prediction x0_t, and a step from s to t with h = lambda_t - lambda_s > 0. The data-prediction form takes
the paper's h phi_k(h) at -h, written phi_k here:
    phi_1 = e^{-h} - 1,   phi_2 = phi_1 / (-h) - 1,   phi_3 = phi_2 / (-h) - 1/2
    B(h)  = e^{-h} - 1                                                          (bh2)
For an earlier point r: r_1 = (lambda_r - lambda_s) / h < 0 and D_1 = x0_r - x0_s.

UniP-p, the predictor, from the (corrected) x_s:
    x~_t = (sigma_t / sigma_s) x_s - alpha_t phi_1 x0_s - alpha_t B(h) sum_{m < p} a_m D_m / r_m
UniC-p, the corrector, once the model has been called at x~_t (D_p = x0_t - x0_s, r_p = 1):
    x_t  = (sigma_t / sigma_s) x_s - alpha_t phi_1 x0_s - alpha_t B(h) (sum_{m < p} a_m D_m / r_m + a_p D_p)
where a solves R a = g / B(h), R[k][m] = r_m^k, g = (phi_2, 2 phi_3, ...) (k = 0 .. p-1). As in diffusers,
a_1 = 1/2 in UniP-2 and in UniC-1 instead of the solve; UniP-2 is then exactly DPM-Solver++(2M).
For UniC-2 the 2 x 2 system has the closed form a_1 = (b_1 - b_2) / (1 - r_1), a_2 = b_1 - a_1,
b = g / B(h).

The corrector costs no model call: x0_t = x0_theta(x~_t, t) is the very evaluation the next predictor
starts from (it is taken at the uncorrected x~_t and enters the history as it is). As diffusers'
UniPCMultistepScheduler with its defaults (solver_order=2, solver_type="bh2", predict_x0=True,
lower_order_final=True, final_sigmas_type="zero"): step i (0-based, of n) predicts with order
min(2, n - i, i + 1), i.e. 1 at the first and the last step, and from step 1 on first corrects the previous
prediction with the order that prediction used. The last prediction, to sigma = 0, is the data prediction
itself and is not corrected. All coefficients are computed in float64.
"""

from __future__ import annotations

import math

import torch

from diffadapt.diffusion.dpmpp_2m import dpmpp_2m_step, vp_coefficients


def unipc_order(index: int, num_steps: int) -> int:
    """The predictor's order at step ``index`` of ``num_steps`` (diffusers' ``this_order``): the history
    holds index + 1 data predictions, and lower_order_final lowers it near the end."""
    return min(2, num_steps - index, index + 1)


def unip_step(
    x: torch.Tensor,
    x0: torch.Tensor,
    alpha_bar: float,
    alpha_bar_next: float,
    x0_earlier: torch.Tensor | None = None,
    alpha_bar_earlier: float | None = None,
) -> torch.Tensor:
    """UniP-1 (no earlier point) or UniP-2 from s to t, which with bh2 and a_1 = 1/2 is DPM-Solver++(2M).

    Args as :func:`~diffadapt.diffusion.dpmpp_2m.dpmpp_2m_step`: x, x0 (B, C, H, W) at s; alpha_bar at s
    and at t (1.0 after the last step); x0_earlier and alpha_bar_earlier at the point before s.
    Returns:
        (B, C, H, W) the prediction x~_t in x's dtype.
    """
    return dpmpp_2m_step(x, x0, alpha_bar, alpha_bar_next, x0_earlier, alpha_bar_earlier)


def unic_step(
    x: torch.Tensor,
    x0: torch.Tensor,
    alpha_bar: float,
    alpha_bar_next: float,
    x0_next: torch.Tensor,
    x0_earlier: torch.Tensor | None = None,
    alpha_bar_earlier: float | None = None,
) -> torch.Tensor:
    """UniC-1 (no earlier point) or UniC-2: the step s -> t taken again with x0_t known; pure.

    Args:
        x: (B, C, H, W) the corrected sample x_s the prediction started from.
        x0: (B, C, H, W) its data prediction x0_s.
        alpha_bar, alpha_bar_next: alpha_bar at s and at t (t is a point the model was called at, so < 1).
        x0_next: (B, C, H, W) x0_t, the data prediction at the predicted x~_t.
        x0_earlier, alpha_bar_earlier: x0_r and alpha_bar at the point r before s, for UniC-2.
    Returns:
        (B, C, H, W) the corrected x_t in x's dtype.
    """
    alpha_t, _, lambda_t = vp_coefficients(alpha_bar_next)
    lambda_s = vp_coefficients(alpha_bar)[2]
    h = lambda_t - lambda_s
    if math.isinf(h):
        raise ValueError("UniC corrects a point the model was called at, never sigma = 0")
    phi_1 = b_h = math.expm1(-h)
    x0 = x0.float()
    correction: torch.Tensor | float = 0.0
    a_next = 0.5
    if x0_earlier is not None:
        if alpha_bar_earlier is None:
            raise ValueError("UniC-2 needs alpha_bar at the earlier point")
        r = (vp_coefficients(alpha_bar_earlier)[2] - lambda_s) / h
        phi_2 = phi_1 / -h - 1.0
        phi_3 = phi_2 / -h - 0.5
        b_1, b_2 = phi_2 / b_h, 2.0 * phi_3 / b_h
        a_earlier = (b_1 - b_2) / (1.0 - r)
        a_next = b_1 - a_earlier
        correction = (a_earlier / r) * (x0_earlier.float() - x0)
    first_order = dpmpp_2m_step(x.float(), x0, alpha_bar, alpha_bar_next)
    return (first_order - alpha_t * b_h * (correction + a_next * (x0_next.float() - x0))).to(x.dtype)
