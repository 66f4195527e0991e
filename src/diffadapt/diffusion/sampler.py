"""One sampling loop for DDPM ancestral sampling and DDIM, for any epsilon-prediction model.

``eps_model(x, t)`` takes x (B, C, H, W) and t (B,) int64 and returns the predicted noise; conditional
models are wrapped by :class:`diffadapt.diffusion.guidance.GuidedModel` first. The loop draws per-step
noise from ``generator`` in a fixed order (one normal tensor of x's shape per step that needs it), so a
seed fixes every result and a reference implementation can be fed the very same noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from diffadapt.diffusion.ddim import ddim_step, ddim_timesteps
from diffadapt.diffusion.ddpm import ddpm_step, ddpm_timesteps
from diffadapt.diffusion.schedule import LinearSchedule

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# callback(t, x): x is the sample at noise level t in the paper's 1-based indexing, i.e. the state just
# before the model is called at 0-based timestep t - 1; it is called once more with t = 0 and the result.
Callback = Callable[[int, torch.Tensor], None]


@dataclass
class SamplerConfig:
    method: str = "ddim"  # "ddpm" (ancestral, every timestep) or "ddim"
    steps: int = 50  # DDIM steps (ignored by ddpm)
    eta: float = 0.0  # DDIM only: 0 deterministic, 1 DDPM-like variance
    spacing: str = "leading"  # DDIM timestep spacing: leading, trailing, linspace
    clip_x0: bool = False
    variance: str = "posterior"  # DDPM only: posterior (beta_tilde) or beta

    def to_dict(self) -> dict:
        return asdict(self)

    def timesteps(self, schedule: LinearSchedule) -> list[int]:
        if self.method == "ddpm":
            return ddpm_timesteps(schedule.num_timesteps)
        if self.method == "ddim":
            return ddim_timesteps(schedule.num_timesteps, self.steps, self.spacing)
        raise ValueError(f"unknown sampling method {self.method!r} (ddpm or ddim)")


@torch.no_grad()
def sample(
    eps_model: EpsModel,
    x_T: torch.Tensor,
    schedule: LinearSchedule,
    config: SamplerConfig = SamplerConfig(),
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Run the reverse process from x_T (B, C, H, W) float noise; returns x_0 in model scale (float32).

    The initial noise is the caller's (DDIM's graded setting starts from given noise tensors); the
    generator only feeds the per-step noise of DDPM and of DDIM with eta > 0.
    """
    timesteps = config.timesteps(schedule)
    x = x_T.float()
    batch = x.shape[0]

    def step_noise() -> torch.Tensor:
        return torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32)

    iterator = timesteps
    if progress:
        from tqdm import tqdm

        iterator = tqdm(timesteps, desc=f"{config.method} sampling", unit="step", leave=False)
    for index, t in enumerate(iterator):
        if callback is not None:
            callback(t + 1, x)
        t_batch = torch.full((batch,), t, device=x.device, dtype=torch.int64)
        eps = eps_model(x, t_batch).float()
        if config.method == "ddpm":
            noise = step_noise() if t > 0 else None
            x = ddpm_step(x, eps, t, schedule, noise, config.variance, config.clip_x0)
        else:
            alpha_bar_t = float(schedule.alpha_bars[t])
            prev = timesteps[index + 1] if index + 1 < len(timesteps) else None
            alpha_bar_prev = float(schedule.alpha_bars[prev]) if prev is not None else 1.0
            noise = step_noise() if config.eta > 0 and prev is not None else None
            x = ddim_step(x, eps, alpha_bar_t, alpha_bar_prev, config.eta, noise, config.clip_x0)
    if callback is not None:
        callback(0, x)
    return x
