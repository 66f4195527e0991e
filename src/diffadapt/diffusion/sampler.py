"""The reverse process for any epsilon-prediction model: one short loop per sampler (DDPM ancestral sampling,
DDIM, DPM-Solver++(2M) and its SDE variant, UniPC) over its pure step, chosen from :data:`SAMPLER_LOOPS`.

``eps_model(x, t)`` takes x (B, C, H, W) and t (B,) int64 and returns the predicted noise; conditional
models are wrapped by :class:`diffadapt.diffusion.guidance.GuidedModel` first. The loop draws per-step
noise from ``generator`` in a fixed order (one normal tensor of x's shape per step that needs it), so a
seed fixes every result and a reference implementation can be fed the very same noise. The multistep
loops keep the data predictions their pure steps look back at.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

import torch

from diffadapt.diffusion.ddim import ddim_step
from diffadapt.diffusion.ddpm import ddpm_step
from diffadapt.diffusion.dpmpp_2m import dpmpp_2m_order, dpmpp_2m_sde_step, dpmpp_2m_step
from diffadapt.diffusion.schedule import LinearSchedule, predict_x0
from diffadapt.diffusion.timesteps import Spacing, ddim_timesteps, ddpm_timesteps, multistep_timesteps
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


SamplerMethod = Literal["ddpm", "ddim", "dpmpp-2m", "dpmpp-2m-sde", "unipc"]
Variance = Literal["posterior", "beta"]
SAMPLER_METHODS: tuple[str, ...] = get_args(SamplerMethod)


@dataclass
class SamplerConfig(Settings):
    """How to run the reverse process; a checkpoint's ``sampling`` section holds its defaults."""

    method: SamplerMethod = described(
        "ddim", "ddpm: ancestral, every timestep; ddim: Song et al.'s sub-sequence sampler; "
        "dpmpp-2m: DPM-Solver++(2M), Lu et al.; dpmpp-2m-sde: its stochastic (SDE) variant; unipc: UniPC-2 (bh2), Zhao et al.",
    )
    steps: int = number(50, at_least=1, at_most=100_000, help="solver steps (ignored by ddpm, which visits every timestep)")
    eta: float = number(0.0, at_least=0.0, at_most=1.0, help="DDIM only: 0 deterministic, 1 DDPM-like variance")
    spacing: Spacing = described("leading", "timestep spacing of the non-ddpm methods: leading (the course's), trailing, linspace, quadratic (crowded at low noise)")
    clip_x0: bool = described(False, "clip the predicted x0 to [-1, 1] at each step")
    variance: Variance = described("posterior", "DDPM only: posterior (beta_tilde) or beta")

    def validate(self) -> None:
        # An eta given to a sampler that has none would read as having changed the samples.
        if self.method != "ddim" and self.eta != 0.0:
            raise InputError(f"eta {self.eta:g} applies to DDIM only; the {self.method} sampler has no eta (leave it out)")

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


class _Walk:
    """What every sampler's loop shares: the model call at a timestep (with the caller's callback and
    progress bar) and the per-step noise, drawn in the loop's order."""

    def __init__(self, eps_model: EpsModel, generator: torch.Generator | Sequence[torch.Generator] | None,
                 callback: Callback | None, bar: ProgressBar | None) -> None:
        self.eps_model, self.generator, self.callback, self.bar = eps_model, generator, callback, bar

    def eps(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """The predicted noise at x (B, C, H, W), 0-based timestep t, in float32."""
        if self.callback is not None:
            self.callback(t + 1, x)
        eps = self.eps_model(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.int64)).float()
        if self.bar is not None:
            self.bar.update(1)
        return eps

    def x0(self, x: torch.Tensor, t: int, alpha_bar_t: float, clip: bool) -> torch.Tensor:
        """The data prediction x0_theta(x_t, t) of the multistep solvers, clipped to [-1, 1] on request."""
        x0 = predict_x0(x, self.eps(x, t), alpha_bar_t)
        return x0.clamp(-1.0, 1.0) if clip else x0

    def noise(self, x: torch.Tensor) -> torch.Tensor:
        """z ~ N(0, I) of x's shape: from the batch's generator, or one sample from each sample's."""
        if self.generator is None or isinstance(self.generator, torch.Generator):
            return torch.randn(x.shape, generator=self.generator, device=x.device, dtype=torch.float32)
        return torch.stack([torch.randn(x.shape[1:], generator=g, device=x.device, dtype=torch.float32) for g in self.generator])


# Each loop: (walk, x_T, timesteps, alpha_bars, schedule, config) -> x_0, where alpha_bars[i] is alpha_bar at
# timesteps[i] and alpha_bars[-1] = 1, the value after the last step (DDIM's set_alpha_to_one, the solvers'
# final sigma 0).
SamplerLoop = Callable[[_Walk, torch.Tensor, Sequence[int], Sequence[float], LinearSchedule, SamplerConfig], torch.Tensor]


def ddpm_loop(walk: _Walk, x: torch.Tensor, timesteps: Sequence[int], alpha_bars: Sequence[float], schedule: LinearSchedule,
              config: SamplerConfig) -> torch.Tensor:
    """Ancestral sampling: fresh noise at every step but the last (t = 0)."""
    for t in timesteps:
        eps = walk.eps(x, t)
        x = ddpm_step(x, eps, t, schedule, walk.noise(x) if t > 0 else None, config.variance, config.clip_x0)
    return x


def ddim_loop(walk: _Walk, x: torch.Tensor, timesteps: Sequence[int], alpha_bars: Sequence[float], schedule: LinearSchedule,
              config: SamplerConfig) -> torch.Tensor:
    """DDIM from alpha_bar_t to alpha_bar_prev; noise (eta > 0) at every step but the last, which goes to x_0."""
    for index, t in enumerate(timesteps):
        eps = walk.eps(x, t)
        noise = walk.noise(x) if config.eta > 0 and index + 1 < len(timesteps) else None
        x = ddim_step(x, eps, alpha_bars[index], alpha_bars[index + 1], config.eta, noise, config.clip_x0)
    return x


def dpmpp_2m_loop(walk: _Walk, x: torch.Tensor, timesteps: Sequence[int], alpha_bars: Sequence[float], schedule: LinearSchedule,
                  config: SamplerConfig, stochastic: bool = False) -> torch.Tensor:
    """DPM-Solver++(2M), or with ``stochastic`` its SDE variant (fresh noise every step, the last included, as
    diffusers draws it); a second-order step looks back at the previous point's (x0, alpha_bar)."""
    previous: tuple[torch.Tensor, float] | tuple[()] = ()
    for index, t in enumerate(timesteps):
        x0 = walk.x0(x, t, alpha_bars[index], config.clip_x0)
        earlier = previous if dpmpp_2m_order(index, len(timesteps)) == 2 else ()
        if stochastic:
            x = dpmpp_2m_sde_step(x, x0, alpha_bars[index], alpha_bars[index + 1], walk.noise(x), *earlier)
        else:
            x = dpmpp_2m_step(x, x0, alpha_bars[index], alpha_bars[index + 1], *earlier)
        previous = (x0, alpha_bars[index])
    return x


def dpmpp_2m_sde_loop(walk: _Walk, x: torch.Tensor, timesteps: Sequence[int], alpha_bars: Sequence[float], schedule: LinearSchedule,
                      config: SamplerConfig) -> torch.Tensor:
    return dpmpp_2m_loop(walk, x, timesteps, alpha_bars, schedule, config, stochastic=True)


def unipc_loop(walk: _Walk, x: torch.Tensor, timesteps: Sequence[int], alpha_bars: Sequence[float], schedule: LinearSchedule,
               config: SamplerConfig) -> torch.Tensor:
    """UniP predicts each step; from the second model call on, UniC first re-takes the last step from the
    corrected sample it started at, now that the data prediction at its end is known (the same model call)."""
    previous: tuple[torch.Tensor, float] | None = None  # (x0, alpha_bar) at the last point
    before: tuple[torch.Tensor, float] | tuple[()] = ()  # ... and at the point before it
    x_corrected, order = x, 1  # the sample the last prediction started from, and that prediction's order
    for index, t in enumerate(timesteps):
        x0 = walk.x0(x, t, alpha_bars[index], config.clip_x0)
        if previous is not None:
            x = unic_step(x_corrected, *previous, alpha_bars[index], x0, *(before if order == 2 else ()))
        before, previous, x_corrected = previous or (), (x0, alpha_bars[index]), x
        order = unipc_order(index, len(timesteps))
        x = unip_step(x, x0, alpha_bars[index], alpha_bars[index + 1], *(before if order == 2 else ()))
    return x


SAMPLER_LOOPS: dict[str, SamplerLoop] = {"ddpm": ddpm_loop, "ddim": ddim_loop, "dpmpp-2m": dpmpp_2m_loop, "dpmpp-2m-sde": dpmpp_2m_sde_loop,
                                         "unipc": unipc_loop}


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
    alpha_bars = [float(schedule.alpha_bars[t]) for t in timesteps] + [1.0]
    # A caller's bar is never tested for truth: tqdm's bool() raises without a total.
    own_bar = progress_bar(len(timesteps), f"{config.method} sampling", "step") if progress is True else None
    bar = own_bar if isinstance(progress, bool) else progress
    try:
        x = SAMPLER_LOOPS[config.method](_Walk(eps_model, generator, callback, bar), x_T.float(), timesteps, alpha_bars, schedule, config)
    finally:
        if own_bar is not None:
            own_bar.close()
    if not bool(torch.isfinite(x).all()):
        # Finite weights can still overflow, and a schedule can be degenerate; NaN images would save as black.
        raise InputError("sampling produced NaN or infinite values: the network's weights or its noise schedule are broken")
    if callback is not None:
        callback(0, x)
    return x
