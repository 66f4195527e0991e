"""The forward process of DDPM (Ho et al., 2020) with linear betas, and its training loss.

Symbols as in the paper:
    beta_t            noise variance added at step t (linear from beta_start to beta_end)
    alpha_t = 1 - beta_t
    alpha_bar_t = prod_{s <= t} alpha_s
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,   eps ~ N(0, I)
Timesteps are integers t = 0 .. T-1 (t = 0 is the first noising step). The schedule is kept in float64;
coefficients are cast to the data's dtype only when applied.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ScheduleConfig:
    """Linear beta schedule. The founding report used T = 500; the course's face UNet T = 1000."""

    num_timesteps: int = 500
    beta_start: float = 1e-4
    beta_end: float = 0.02


class LinearSchedule:
    """Precomputed float64 tables of the forward process.

    Attributes:
        betas, alphas, alpha_bars: (T,) float64 on the CPU.
    """

    def __init__(self, config: ScheduleConfig = ScheduleConfig()) -> None:
        if config.num_timesteps < 1 or not 0 < config.beta_start <= config.beta_end < 1:
            raise ValueError(f"invalid schedule {config}")
        self.config = config
        self.num_timesteps = config.num_timesteps
        self.betas = torch.linspace(config.beta_start, config.beta_end, config.num_timesteps, dtype=torch.float64)
        self.alphas = 1.0 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)

    def coefficient(self, table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """table[t] shaped (B, 1, 1, 1) in ``like``'s dtype and device, for broadcasting over images."""
        values = table.to(like.device)[t.to(like.device)]
        return values.to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps for x0, eps (B, C, H, W) and t (B,) int64."""
        alpha_bar_t = self.alpha_bars.to(x0.device)[t]
        sqrt_ab = alpha_bar_t.sqrt().to(x0.dtype).view(-1, 1, 1, 1)
        sqrt_one_minus_ab = (1.0 - alpha_bar_t).sqrt().to(x0.dtype).view(-1, 1, 1, 1)
        return sqrt_ab * x0 + sqrt_one_minus_ab * eps

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
        alpha_bar_t = self.alpha_bars.to(x_t.device)[t.to(x_t.device)]
        sqrt_ab = alpha_bar_t.sqrt().to(x_t.dtype).view(-1, 1, 1, 1)
        sqrt_one_minus_ab = (1.0 - alpha_bar_t).sqrt().to(x_t.dtype).view(-1, 1, 1, 1)
        return (x_t - sqrt_one_minus_ab * eps) / sqrt_ab


def epsilon_loss(
    model,
    schedule: LinearSchedule,
    x0: torch.Tensor,
    labels: torch.Tensor | None,
    generator: torch.Generator | None = None,
    p_uncond: float = 0.0,
    null_label: int | None = None,
) -> torch.Tensor:
    """The simple DDPM loss || eps - eps_theta(x_t, t, c) ||^2 with classifier-free label dropout.

    Args:
        model: callable (x_t (B, C, H, W), t (B,) int64, labels (B,) int64 or None) -> eps (B, C, H, W).
        x0: clean images in [-1, 1].
        labels: class labels; with probability ``p_uncond`` each is replaced by ``null_label`` so that one
            network learns both eps(x_t, c) and eps(x_t, null) (Ho & Salimans, 2022).
        generator: draws t, eps and the dropout mask (on x0's device), so a seed fixes the step.
    """
    batch = x0.shape[0]
    t = torch.randint(0, schedule.num_timesteps, (batch,), device=x0.device, generator=generator)
    eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    if labels is not None and p_uncond > 0:
        if null_label is None:
            raise ValueError("label dropout needs the null label")
        drop = torch.rand(batch, device=x0.device, generator=generator) < p_uncond
        labels = torch.where(drop, torch.full_like(labels, null_label), labels)
    x_t = schedule.q_sample(x0, t, eps)
    prediction = model(x_t, t, labels)
    return F.mse_loss(prediction.float(), eps.float())
