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

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from diffadapt.errors import InputError
from diffadapt.settings import Settings, number

# The samplers divide by 1 - alpha_bar_t and by sqrt(alpha_bar_t): a beta below about 1e-16 makes the first
# zero even in float64, betas near 1 underflow the second to zero. Real schedules start near 1e-4 and end with
# alpha_bar_T between about 1e-5 and 1e-2, so these bounds refuse only broken ones.
MIN_BETA = 1e-6
MIN_ALPHA_BAR = 1e-20


@dataclass(frozen=True)
class ScheduleConfig(Settings):
    """Linear beta schedule. The founding report used T = 500; the course's face UNet T = 1000."""

    num_timesteps: int = number(500, at_least=1, at_most=100_000, help="T, the number of noising steps")
    beta_start: float = number(1e-4, at_least=MIN_BETA, below=1.0, help="beta_1")
    beta_end: float = number(0.02, at_least=MIN_BETA, below=1.0, help="beta_T")

    def validate(self) -> None:
        if self.beta_start > self.beta_end:
            raise InputError(f"beta_start ({self.beta_start:g}) must not exceed beta_end ({self.beta_end:g})")
        betas = torch.linspace(self.beta_start, self.beta_end, self.num_timesteps, dtype=torch.float64)
        log10_alpha_bar_T = float(torch.log1p(-betas).sum()) / math.log(10)
        if log10_alpha_bar_T < math.log10(MIN_ALPHA_BAR):
            raise InputError(f"beta_start {self.beta_start:g}, beta_end {self.beta_end:g} and {self.num_timesteps} timesteps leave alpha_bar_T = "
                             f"1e{log10_alpha_bar_T:.0f}, below {MIN_ALPHA_BAR:g}: no image survives to step T, and the samplers divide by sqrt(alpha_bar_t)")


class LinearSchedule:
    """Precomputed float64 tables of the forward process.

    Attributes:
        betas, alphas, alpha_bars: (T,) float64 on the CPU.
    """

    def __init__(self, config: ScheduleConfig = ScheduleConfig()) -> None:
        self.config = config
        self.num_timesteps = config.num_timesteps
        self.betas = torch.linspace(config.beta_start, config.beta_end, config.num_timesteps, dtype=torch.float64)
        self.alphas = 1.0 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps for x0, eps (B, C, H, W) and t (B,) int64."""
        alpha_bar_t = self.alpha_bars.to(x0.device)[t]
        sqrt_ab = alpha_bar_t.sqrt().to(x0.dtype).view(-1, 1, 1, 1)
        sqrt_one_minus_ab = (1.0 - alpha_bar_t).sqrt().to(x0.dtype).view(-1, 1, 1, 1)
        return sqrt_ab * x0 + sqrt_one_minus_ab * eps


def predict_x0(x_t: torch.Tensor, eps: torch.Tensor, alpha_bar_t: float) -> torch.Tensor:
    """x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), in float32: every sampler's data
    prediction from a noise prediction (the one place this formula is written)."""
    return (x_t.float() - (1.0 - alpha_bar_t) ** 0.5 * eps.float()) / alpha_bar_t**0.5


def epsilon_loss(
    model,
    schedule: LinearSchedule,
    x0: torch.Tensor,
    labels: torch.Tensor | None,
    generator: torch.Generator | None = None,
    p_uncond: float = 0.0,
    null_label: int | None = None,
    shard: tuple[int, int] = (0, 1),
) -> torch.Tensor:
    """The simple DDPM loss || eps - eps_theta(x_t, t, c) ||^2 with classifier-free label dropout.

    Args:
        model: callable (x_t (B, C, H, W), t (B,) int64, labels (B,) int64 or None) -> eps (B, C, H, W).
        x0: (B, C, H, W) clean images in [-1, 1].
        labels: (B,) class labels; with probability ``p_uncond`` each is replaced by ``null_label`` so that
            one network learns both eps(x_t, c) and eps(x_t, null) (Ho & Salimans, 2022).
        generator: draws t, eps and the dropout mask (on x0's device), so a seed fixes the step.
        shard: (rank, world): x0 is this rank's part of a global batch of world x B images. t, eps and the
            mask are drawn for the whole global batch (the same draws on every rank) and this rank's part
            is used, so world ranks of B images train exactly as one process of world x B would.
    """
    rank, world = shard
    batch = x0.shape[0]
    total = batch * world
    t = torch.randint(0, schedule.num_timesteps, (total,), device=x0.device, generator=generator)
    eps = torch.randn((total, *x0.shape[1:]), device=x0.device, dtype=x0.dtype, generator=generator)
    part = slice(rank * batch, (rank + 1) * batch)
    t, eps = t[part], eps[part]
    if labels is not None and p_uncond > 0:
        if null_label is None:
            raise ValueError("label dropout needs the null label")
        drop = (torch.rand(total, device=x0.device, generator=generator) < p_uncond)[part]
        labels = torch.where(drop, torch.full_like(labels, null_label), labels)
    x_t = schedule.q_sample(x0, t, eps)
    prediction = model(x_t, t, labels)
    return F.mse_loss(prediction.float(), eps.float())
