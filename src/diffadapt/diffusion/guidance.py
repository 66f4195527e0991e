"""Classifier-free guidance (Ho & Salimans, 2022), optionally limited to an interval of timesteps.

    eps = eps_uncond + s * (eps_cond - eps_uncond)

s = 1 is the plain conditional model, s = 0 the unconditional one, s > 1 pushes samples towards the
class. Much course code writes the same thing as ``(1 + w) * eps_cond - w * eps_uncond``: that is this
formula with s = 1 + w (w = 0 is unguided, the report's w = 2 is s = 3).

Guidance interval (Kynkaenniemi et al., 2024): guidance at the highest noise levels decides the layout
of a sample early and collapses the variety of the class; at the lowest it only sharpens detail. Applying
s only for timesteps lo <= t <= hi and the conditional model (s = 1) elsewhere keeps most of the accuracy
gain with less loss of diversity, and the steps outside the interval cost one forward instead of two.

Frequency-split guidance (after Sadat et al., 2025, "Guidance in the frequency domain"): the guidance
direction d = eps_cond - eps_uncond is split by one level of a Laplacian pyramid, L(d) = the 2x2 average
upsampled back (bilinear), and the fine band d - L(d) gets only a share r of the guidance w = s - 1:

    eps = eps_uncond + s L(d) + (1 + r (s - 1)) (d - L(d))

r = 1 is plain guidance; r = 0 leaves the fine band at the conditional model's. On the digit model the
coarse band carries the class (course accuracy) and the fine band most of guidance's cost in realism
(benchmarks/RESULTS.md, "Frequency-split guidance").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from diffadapt.errors import InputError
from diffadapt.settings import Settings, number

GUIDANCE_MAX = 50.0  # far beyond any useful scale; a bound that turns typos like 400 into an error


@dataclass(frozen=True)
class Guidance(Settings):
    """The guidance scale s and the 0-based timesteps (lo, hi), inclusive, where it applies (None: all)."""

    scale: float = number(1.0, at_least=0.0, at_most=GUIDANCE_MAX, help="guidance scale s")
    interval: tuple[int, ...] | None = None
    high_frequency_share: float = number(1.0, at_least=0.0, at_most=4.0,
                                         help="r: the fine band of eps_cond - eps_uncond gets guidance 1 + r (s - 1); 1: plain guidance")

    def validate(self) -> None:
        if self.interval is not None:
            if len(self.interval) != 2:
                raise InputError(f"guidance interval must be (lo, hi), got {self.interval}")
            lo, hi = self.interval
            if not 0 <= lo <= hi:
                raise InputError(f"guidance interval must be 0 <= lo <= hi, got {lo}..{hi}")

    def scale_at(self, t: int) -> float:
        """s at timestep t: the scale inside the interval, 1 (conditional only) outside it."""
        if self.interval is None or self.interval[0] <= t <= self.interval[1]:
            return float(self.scale)
        return 1.0

    def forwards(self, timesteps: list[int]) -> int:
        """Network evaluations per image over ``timesteps``: two where guidance applies, one elsewhere
        (s = 1 needs only the conditional half, s = 0 only the unconditional one)."""
        return sum(1 if self.scale_at(t) in (0.0, 1.0) else 2 for t in timesteps)

    def __str__(self) -> str:
        text = f"s {self.scale:g}"
        if self.high_frequency_share != 1.0:
            text += f", high-frequency share {self.high_frequency_share:g}"
        return text if self.interval is None else f"{text} at t {self.interval[0]}..{self.interval[1]}"


def check_interval_setting(interval: tuple[int, ...]) -> None:
    """A config's ``guidance_interval``: Guidance's own check, its error naming the setting."""
    try:
        Guidance(interval=interval)
    except InputError as exc:
        raise InputError(f"guidance_interval: {exc}") from None


def coarse_band(d: torch.Tensor) -> torch.Tensor:
    """L(d): (B, C, H, W) -> the same shape, the 2x2 average pooled and upsampled back (bilinear)."""
    pooled = F.avg_pool2d(d, 2, ceil_mode=True)
    return F.interpolate(pooled, size=d.shape[-2:], mode="bilinear", align_corners=False)


def guided_epsilon(eps_cond: torch.Tensor, eps_uncond: torch.Tensor, scale: float, high_frequency_share: float = 1.0) -> torch.Tensor:
    """eps_uncond + s (eps_cond - eps_uncond), or with r != 1 the frequency-split form of the module
    docstring; (B, C, H, W) in, float32 out whatever the model's dtype."""
    eps_cond, eps_uncond = eps_cond.float(), eps_uncond.float()
    d = eps_cond - eps_uncond
    if high_frequency_share == 1.0:
        return eps_uncond + scale * d
    coarse = coarse_band(d)
    fine_scale = 1.0 + high_frequency_share * (scale - 1.0)
    return eps_uncond + scale * coarse + fine_scale * (d - coarse)


class GuidedModel(nn.Module):
    """Wrap a conditional eps-model into an eps(x, t) callable for fixed labels and guidance.

    Both halves run in one batched forward: the input is duplicated and the second half gets the null
    label, which costs one launch sequence instead of two. With an interval, every sample of a call must
    share one t (as in the sampler); t is read on the host once per call.
    """

    def __init__(self, model: nn.Module, labels: torch.Tensor, guidance: Guidance | float, null_label: int) -> None:
        super().__init__()
        self.model = model
        self.labels = labels
        self.guidance = guidance if isinstance(guidance, Guidance) else Guidance(float(guidance))
        self.null_label = null_label

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        scale = self.guidance.scale_at(int(t.reshape(-1)[0])) if self.guidance.interval is not None else self.guidance.scale
        if scale == 1.0:
            return self.model(x, t, self.labels).float()
        if scale == 0.0:
            return self.model(x, t, torch.full_like(self.labels, self.null_label)).float()
        both = self.model(
            torch.cat([x, x]), torch.cat([t, t]), torch.cat([self.labels, torch.full_like(self.labels, self.null_label)])
        )
        eps_cond, eps_uncond = both.chunk(2)
        return guided_epsilon(eps_cond, eps_uncond, scale, self.guidance.high_frequency_share)
