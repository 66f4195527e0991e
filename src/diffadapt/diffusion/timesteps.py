"""Which timesteps a sampler visits, largest first: every spacing in one table, for every sampler.

With T = num_train_timesteps and n = the number of model calls:

- ``leading`` (the course's, diffusers' default): k * (T // n) for k = n-1 .. 0, e.g. 980, 960, ..., 0 for
  T = 1000 and n = 50;
- ``trailing``: round(T - k T / n) - 1 for k = 0 .. n-1; the first call is at T - 1 (pure noise);
- ``linspace``: n values evenly spaced from T - 1 down to 0, rounded half to even;
- ``quadratic``: (T - 1) * ((n - k) / n)^2 for k = 0 .. n-1 (no diffusers spacing; their schedulers take it as
  a list of custom timesteps).

DDIM visits these points as they are (:func:`ddim_timesteps`, as diffusers' DDIMScheduler). The multistep
solvers (DPM-Solver++, UniPC; :func:`multistep_timesteps`, as diffusers' multistep schedulers) end with a
step to sigma = 0 from their last point, so for a spacing whose points end at timestep 0 (leading,
linspace) they take the rule's n + 1 points and drop that 0: e.g. 830, 664, 498, 332, 166 for leading,
T = 1000, n = 5. DDPM's ancestral sampler visits every timestep (:func:`ddpm_timesteps`).

A new spacing is a name in :data:`Spacing` and a row in :data:`SPACING_RULES`; every sampler, command and
config that takes a spacing then offers it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import numpy as np

Spacing = Literal["leading", "trailing", "linspace", "quadratic"]
SPACINGS: tuple[str, ...] = get_args(Spacing)


def leading_timesteps(num_train_timesteps: int, num_steps: int) -> list[int]:
    """k * (T // n) for k = n-1 .. 0."""
    stride = num_train_timesteps // num_steps
    return [k * stride for k in range(num_steps - 1, -1, -1)]


def trailing_timesteps(num_train_timesteps: int, num_steps: int) -> list[int]:
    """round(T - k T / n) - 1 for k = 0 .. n-1 (half to even), computed as diffusers does, from
    np.arange(T, 0, -T / n): its accumulated stride differs from T / n in the last bits, enough to decide
    ties such as 937.5 (T = 1000, n = 48). That arange sometimes yields an (n + 1)-th value, timestep -1,
    which diffusers then visits; we stop at n."""
    return (np.arange(num_train_timesteps, 0, -num_train_timesteps / num_steps).round()[:num_steps].astype(np.int64) - 1).tolist()


def linspace_timesteps(num_train_timesteps: int, num_steps: int) -> list[int]:
    """n values evenly spaced from T - 1 down to 0, rounded half to even."""
    return np.linspace(0, num_train_timesteps - 1, num_steps).round()[::-1].astype(np.int64).tolist()


def quadratic_timesteps(num_train_timesteps: int, num_steps: int) -> list[int]:
    """(T - 1) * ((n - k) / n)^2 for k = 0 .. n-1, rounded half to even: e.g. 499, 347, 222, 125, 55, 14 for
    T = 500, n = 6.

    Quadratic in the step index, as the DDIM paper's quadratic sub-sequence (Song et al., 2021, appendix D.2),
    but from T - 1 (pure noise, like ``trailing``): the steps crowd at low noise, so the last model call sees
    a nearly clean sample and the result keeps fine texture that a last call at T / n would average away (the
    measurements are in benchmarks/RESULTS.md). The last step goes to alpha_bar = 1, as with the other
    spacings; the last timestep is (T - 1) / n^2 rounded, 0 only when n > sqrt(2 (T - 1)).

    Raises ValueError when two timesteps round to the same value (T = 500: from n = 55 on; T = 1000: 78).
    """
    fractions = np.arange(num_steps, 0, -1, dtype=np.float64) / num_steps
    steps = np.round((num_train_timesteps - 1) * fractions**2).astype(np.int64).tolist()
    if len(set(steps)) < len(steps):
        raise ValueError(f"{num_steps} steps of quadratic spacing repeat a timestep of T = {num_train_timesteps}; use fewer steps")
    return steps


# spacing -> (its rule (T, n) -> n timesteps largest first, whether the rule's last point is timestep 0)
SPACING_RULES: dict[str, tuple[Callable[[int, int], list[int]], bool]] = {
    "leading": (leading_timesteps, True),
    "trailing": (trailing_timesteps, False),
    "linspace": (linspace_timesteps, True),
    "quadratic": (quadratic_timesteps, False),
}


def _rule(spacing: str, num_train_timesteps: int, num_steps: int) -> tuple[Callable[[int, int], list[int]], bool]:
    if not 1 <= num_steps <= num_train_timesteps:
        raise ValueError(f"steps must be in 1..{num_train_timesteps}, got {num_steps}")
    if spacing not in SPACING_RULES:
        raise ValueError(f"unknown spacing {spacing!r} (one of {', '.join(SPACINGS)})")
    return SPACING_RULES[spacing]


def ddim_timesteps(num_train_timesteps: int, num_steps: int, spacing: str = "leading") -> list[int]:
    """The timesteps a DDIM sampler visits, largest first, as diffusers' DDIMScheduler sets them."""
    rule, _ = _rule(spacing, num_train_timesteps, num_steps)
    return rule(num_train_timesteps, num_steps)


def multistep_timesteps(num_train_timesteps: int, num_steps: int, spacing: str = "leading") -> list[int]:
    """The timesteps of diffusers' multistep schedulers (DPM-Solver++, UniPC), largest first: the rule's
    points, or for a rule that ends at 0 its n + 1 points without that 0 (see the module docstring).

    Raises ValueError when a timestep would repeat (h = 0 breaks the second-order step).
    """
    rule, ends_at_zero = _rule(spacing, num_train_timesteps, num_steps)
    steps = rule(num_train_timesteps, num_steps + 1)[:-1] if ends_at_zero else rule(num_train_timesteps, num_steps)
    if len(set(steps)) < len(steps):
        raise ValueError(f"{num_steps} steps of {spacing} spacing repeat a timestep of T = {num_train_timesteps}; use fewer steps")
    return steps


def ddpm_timesteps(num_timesteps: int) -> list[int]:
    """Every timestep, T - 1 down to 0: DDPM's ancestral sampler."""
    return list(range(num_timesteps - 1, -1, -1))
