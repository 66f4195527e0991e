"""What to sample with: the sampler and its classifier-free guidance, as one settings object.

:class:`SamplingSettings` is the one form of these settings. A digit checkpoint's ``sampling`` section, a
report's ``[digits]`` table, the sampling flags of the ``digits`` and ``faces`` commands and the API's keywords
all are (or build) one. Every field is optional (None: not given here), and :meth:`SamplingSettings.over` lays
the given fields over another's: the user's over the checkpoint's, the checkpoint's over its kind's fallback.
Each field's bounds, choices and help are those of the config that runs it (:class:`SamplerConfig` for the
sampler, :class:`Guidance` for the scale), read from there, not restated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, Literal

from diffadapt.diffusion.guidance import Guidance, check_interval_setting
from diffadapt.diffusion.sampler import SamplerConfig, SamplerMethod
from diffadapt.diffusion.schedule import LinearSchedule
from diffadapt.diffusion.timesteps import Spacing
from diffadapt.errors import InputError
from diffadapt.settings import Settings, described, field_default, is_whole_number


def _optional(config: type, name: str, help: str | None = None) -> Any:  # noqa: A002
    """A field that defaults to None ("not given") with the bounds and help of ``config``'s field ``name``."""
    source = next(f for f in fields(config) if f.name == name)
    metadata = dict(source.metadata) if help is None else {**source.metadata, "help": help}
    return dataclasses.field(default=None, metadata=metadata)


@dataclass
class SamplingSettings(Settings):
    """The sampler and its guidance; None in a field: not given here (see :meth:`over`)."""

    method: SamplerMethod | None = _optional(SamplerConfig, "method")
    steps: int | None = _optional(SamplerConfig, "steps")
    eta: float | None = _optional(SamplerConfig, "eta")
    spacing: Spacing | None = _optional(SamplerConfig, "spacing")
    clip_x0: bool | None = _optional(SamplerConfig, "clip_x0")
    guidance: float | None = _optional(Guidance, "scale", "classifier-free guidance scale s (s = 1 + w of the (1 + w) eps_c - w eps_u form)")
    # None here and in every settings below it: guidance at every step, as "all".
    guidance_interval: tuple[int, ...] | Literal["all"] | None = described(
        None, "apply guidance only at 0-based timesteps [lo, hi], inclusive, the conditional model elsewhere; 'all' for every step")
    guidance_high_frequency: float | None = _optional(
        Guidance, "high_frequency_share", "frequency-split guidance: the share r of the guidance (s - 1) that the fine band of "
        "eps_cond - eps_uncond gets; 1: plain guidance")

    def validate(self) -> None:
        if isinstance(self.guidance_interval, tuple):  # checked here, so the error names the setting before any work
            check_interval_setting(self.guidance_interval)

    def _given(self, names: tuple[str, ...]) -> dict[str, Any]:
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def over(self, defaults: SamplingSettings) -> SamplingSettings:
        """The fields given here, ``defaults``' elsewhere (a plain SamplingSettings, whatever embeds either).

        A method given here other than the defaults' own takes eta 0 and guidance at every step unless eta or
        the interval is given too: the defaults' eta and interval belong to their method. DDIM's eta would be
        refused by a sampler that has none; an interval chosen for a stochastic sampler leaves the high-noise
        steps unguided, where a deterministic one fixes the digit's shape for good (benchmarks/RESULTS.md).
        """
        given = self._given(SAMPLING_FIELDS)
        if "method" in given and given["method"] != defaults.method:
            given.setdefault("eta", OTHER_METHOD_FALLBACK["eta"])
            if isinstance(defaults.guidance_interval, tuple):  # None and "all" already mean every step
                given.setdefault("guidance_interval", OTHER_METHOD_FALLBACK["guidance_interval"])
        return SamplingSettings(**{**{name: getattr(defaults, name) for name in SAMPLING_FIELDS}, **given})

    def completed(self) -> SamplingSettings:
        """Every sampler field filled with SamplerConfig's default and the guidance with Guidance's where not
        given (the interval stays None: every step)."""
        sampler = SamplerConfig(**self._given(SAMPLER_FIELDS))
        guidance = self._guidance_defaults()
        return SamplingSettings(**{name: getattr(sampler, name) for name in SAMPLER_FIELDS}, guidance=guidance.scale,
                                guidance_interval=self.guidance_interval, guidance_high_frequency=guidance.high_frequency_share)

    def _guidance_defaults(self) -> Guidance:
        """The scale and high-frequency share given here, Guidance's defaults elsewhere; no interval."""
        scale = self.guidance if self.guidance is not None else field_default(Guidance, "scale")
        share = self.guidance_high_frequency if self.guidance_high_frequency is not None else field_default(Guidance, "high_frequency_share")
        return Guidance(scale, high_frequency_share=share)

    def sampler_config(self, schedule: LinearSchedule) -> SamplerConfig:
        """The sampler these settings run (SamplerConfig's defaults where not given), its steps checked against
        the schedule's T."""
        config = SamplerConfig(**self._given(SAMPLER_FIELDS))
        config.timesteps(schedule)
        return config

    def guidance_config(self, schedule: LinearSchedule) -> Guidance:
        """The guidance these settings apply, the interval checked against the schedule's last timestep."""
        guidance = self._guidance_defaults()
        if self.guidance_interval is None or self.guidance_interval == "all":
            return guidance
        check_interval_within(self.guidance_interval, schedule)
        return dataclasses.replace(guidance, interval=self.guidance_interval)


def check_interval_within(interval: Any, schedule: LinearSchedule) -> None:
    """A guidance interval [lo, hi] against the schedule's timesteps. Where the model is known before the
    settings are built (the ``digits`` commands, the API), this runs first, so a reversed or too-late interval
    is one message naming the schedule's last timestep; anything that is not two whole numbers is left to
    the settings' own check."""
    if isinstance(interval, (tuple, list)) and len(interval) == 2 and all(is_whole_number(v) for v in interval):
        lo, hi = (int(v) for v in interval)
        if not 0 <= lo <= hi < schedule.num_timesteps:
            raise InputError(f"guidance interval {lo}..{hi} must satisfy 0 <= lo <= hi <= {schedule.num_timesteps - 1} "
                             "(the schedule's last timestep)")


# What :meth:`SamplingSettings.over` gives a method other than the defaults' where these are not given.
OTHER_METHOD_FALLBACK: dict[str, Any] = {"eta": 0.0, "guidance_interval": "all"}
SAMPLER_FIELDS: tuple[str, ...] = ("method", "steps", "eta", "spacing", "clip_x0")  # the SamplerConfig part
SAMPLING_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(SamplingSettings))
