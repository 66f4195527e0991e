"""One sampling loop for DDPM ancestral sampling, DDIM, DPM-Solver++(2M) and UniPC, for any epsilon-prediction model.

``eps_model(x, t)`` takes x (B, C, H, W) and t (B,) int64 and returns the predicted noise; conditional
models are wrapped by :class:`diffadapt.diffusion.guidance.GuidedModel` first. The loop draws per-step
noise from ``generator`` in a fixed order (one normal tensor of x's shape per step that needs it), so a
seed fixes every result and a reference implementation can be fed the very same noise. The multistep
solvers are deterministic; the loop keeps the history of data predictions their pure steps need.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import torch

from diffadapt.diffusion.ddim import Spacing, ddim_step, ddim_timesteps
from diffadapt.diffusion.ddpm import ddpm_step, ddpm_timesteps
from diffadapt.diffusion.dpmpp_2m import dpmpp_2m_order, dpmpp_2m_sde_step, dpmpp_2m_step, multistep_timesteps
from diffadapt.diffusion.schedule import LinearSchedule, predict_x0
from diffadapt.diffusion.unipc import unic_step, unip_step, unipc_order
from diffadapt.errors import InputError
from diffadapt.progress import progress_bar
from diffadapt.settings import Settings, described, number

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# callback(t, x): x is the sample at noise level t in the paper's 1-based indexing, i.e. the state just
# before the model is called at 0-based timestep t - 1; it is called once more with t = 0 and the result.
Callback = Callable[[int, torch.Tensor], None]


class ProgressBar(Protocol):
    """A caller's tqdm-like bar, e.g. one shared by several batches: advanced once per model call."""

    def update(self, n: int = 1) -> object: ...


Method = Literal["ddpm", "ddim", "dpmpp-2m", "dpmpp-2m-sde", "unipc"]
Variance = Literal["posterior", "beta"]
METHODS: tuple[str, ...] = get_args(Method)


@dataclass
class SamplerConfig(Settings):
    """How to run the reverse process; a checkpoint's ``sampling`` section holds its defaults."""

    method: Method = described(
        "ddim", "ddpm: ancestral, every timestep; ddim: Song et al.'s sub-sequence sampler; "
        "dpmpp-2m: DPM-Solver++(2M), Lu et al.; dpmpp-2m-sde: its stochastic (SDE) variant; unipc: UniPC-2 (bh2), Zhao et al.",
    )
    steps: int = number(50, at_least=1, at_most=100_000, help="solver steps (ignored by ddpm, which visits every timestep)")
    eta: float = number(0.0, at_least=0.0, at_most=1.0, help="DDIM only: 0 deterministic, 1 DDPM-like variance")
    spacing: Spacing = described("leading", "timestep spacing of the non-ddpm methods: leading (the course's), trailing, linspace, quadratic (crowded at low noise)")
    clip_x0: bool = described(False, "clip the predicted x0 to [-1, 1] at each step")
    variance: Variance = described("posterior", "DDPM only: posterior (beta_tilde) or beta")

    def timesteps(self, schedule: LinearSchedule) -> list[int]:
        if self.method == "ddpm":
            return ddpm_timesteps(schedule.num_timesteps)
        if self.steps > schedule.num_timesteps:
            raise InputError(f"steps must be in 1..{schedule.num_timesteps} (the schedule's T), got {self.steps}")
        try:
            if self.method == "ddim":
                return ddim_timesteps(schedule.num_timesteps, self.steps, self.spacing)
            return multistep_timesteps(schedule.num_timesteps, self.steps, self.spacing)
        except ValueError as error:
            raise InputError(str(error)) from None

    def describe(self, schedule: LinearSchedule) -> str:
        """E.g. "dpmpp-2m, 10 steps (trailing)" or "ddim, 25 steps (leading), eta 1"."""
        steps = len(self.timesteps(schedule))
        if self.method == "ddpm":
            return f"ddpm, {steps} steps"
        text = f"{self.method}, {steps} steps ({self.spacing})"
        return text + f", eta {self.eta:g}" if self.method == "ddim" else text


def initial_noise(count: int, shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """(count, C, H, W) float32 x_T from a CPU generator: the same for a seed on every device and batch size
    (sample i's noise depends on i and the seed alone)."""
    return torch.randn((count, *shape), generator=torch.Generator().manual_seed(seed))


def per_sample_generators(seed: int, indices: Sequence[int], device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per sample for the per-step noise of stochastic samplers (DDPM, DDIM with eta > 0),
    seeded by (seed, sample index): a sample is the same whatever the batch size or the samples beside it."""
    return [torch.Generator(device=device).manual_seed(seed * 2**24 + int(i) + 1) for i in indices]


def check_eta_applies(method: str, eta: float | None) -> None:
    """A caller's eta with a method that has none is refused rather than ignored (it would read as having
    changed the samples)."""
    if method != "ddim" and eta not in (None, 0.0):
        raise InputError(f"eta {eta:g} applies to DDIM only; the {method} sampler has no eta (leave it out)")


@torch.no_grad()
def sample(
    eps_model: EpsModel,
    x_T: torch.Tensor,
    schedule: LinearSchedule,
    config: SamplerConfig = SamplerConfig(),
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    callback: Callback | None = None,
    progress: bool | ProgressBar = False,
) -> torch.Tensor:
    """Run the reverse process from x_T (B, C, H, W) float noise; returns x_0 in model scale (float32).

    The initial noise is the caller's (DDIM's graded setting starts from given noise tensors); the
    generator only feeds the per-step noise of DDPM, DDIM with eta > 0 and DPM-Solver++(2M) SDE: one generator for the batch,
    or one per sample (each sample's noise is then independent of the batch it is in). ``progress``: True shows a
    bar of this call's steps, a caller's bar is advanced by one per step. For UniPC the callback sees the
    uncorrected prediction, the sample the model is called at.
    """
    timesteps = config.timesteps(schedule)
    x = x_T.float()
    batch = x.shape[0]
    # alpha_bar after the last step is 1: DDIM's set_alpha_to_one, the solvers' final sigma 0.
    alpha_bars = [float(schedule.alpha_bars[t]) for t in timesteps] + [1.0]
    # (x0, alpha_bar) at the latest points, latest last: all that the order-2 solvers look back at.
    history: deque[tuple[torch.Tensor, float]] = deque(maxlen=2)
    x_corrected = x  # UniPC: the corrected sample the last prediction started from

    def step_noise() -> torch.Tensor:
        if generator is None or isinstance(generator, torch.Generator):
            return torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32)
        return torch.stack([torch.randn(x.shape[1:], generator=g, device=x.device, dtype=torch.float32) for g in generator])

    # A caller's bar is never tested for truth: tqdm's bool() raises without a total.
    own_bar = progress is True
    if isinstance(progress, bool):
        bar = progress_bar(len(timesteps), f"{config.method} sampling", "step") if progress else None
    else:
        bar = progress
    for index, t in enumerate(timesteps):
        if callback is not None:
            callback(t + 1, x)
        t_batch = torch.full((batch,), t, device=x.device, dtype=torch.int64)
        eps = eps_model(x, t_batch).float()
        if config.method == "ddpm":
            noise = step_noise() if t > 0 else None
            x = ddpm_step(x, eps, t, schedule, noise, config.variance, config.clip_x0)
        elif config.method == "ddim":
            alpha_bar_t = float(schedule.alpha_bars[t])
            prev = timesteps[index + 1] if index + 1 < len(timesteps) else None
            alpha_bar_prev = float(schedule.alpha_bars[prev]) if prev is not None else 1.0
            noise = step_noise() if config.eta > 0 and prev is not None else None
            x = ddim_step(x, eps, alpha_bar_t, alpha_bar_prev, config.eta, noise, config.clip_x0)
        else:
            x0 = predict_x0(x, eps, alpha_bars[index])
            if config.clip_x0:
                x0 = x0.clamp(-1.0, 1.0)
            if config.method == "unipc" and index > 0:
                # UniC re-takes the last step now that x0 at its end is known, from this same model call.
                x0_last, alpha_bar_last = history[-1]
                earlier = history[-2] if unipc_order(index - 1, len(timesteps)) == 2 else ()
                x = unic_step(x_corrected, x0_last, alpha_bar_last, alpha_bars[index], x0, *earlier)
            history.append((x0, alpha_bars[index]))
            x_corrected = x
            if config.method == "unipc":
                earlier = history[-2] if unipc_order(index, len(timesteps)) == 2 else ()
                x = unip_step(x, x0, alpha_bars[index], alpha_bars[index + 1], *earlier)
            else:
                earlier = history[-2] if dpmpp_2m_order(index, len(timesteps)) == 2 else ()
                if config.method == "dpmpp-2m-sde":  # fresh noise every step, the last included (as diffusers draws it)
                    x = dpmpp_2m_sde_step(x, x0, alpha_bars[index], alpha_bars[index + 1], step_noise(), *earlier)
                else:
                    x = dpmpp_2m_step(x, x0, alpha_bars[index], alpha_bars[index + 1], *earlier)
        if bar is not None:
            bar.update(1)
    if own_bar:
        bar.close()
    if not bool(torch.isfinite(x).all()):
        # Finite weights can still overflow, and a schedule can be degenerate; NaN images would save as black.
        raise InputError("sampling produced NaN or infinite values: the network's weights or its noise schedule are broken")
    if callback is not None:
        callback(0, x)
    return x
