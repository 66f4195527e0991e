"""The one form of the sampling settings: SamplingSettings, laid over a checkpoint's, reached from every entry."""

from __future__ import annotations

import dataclasses

import pytest

from diffadapt.apps.report.config import DigitsPart
from diffadapt.cli import build_parser
from diffadapt.diffusion.guidance import Guidance
from diffadapt.diffusion.models import DIGIT_SAMPLING_FALLBACK, checkpoint_sampling, load_model
from diffadapt.diffusion.sampler import SamplerConfig
from diffadapt.diffusion.sampling import SAMPLING_FIELDS, SamplingSettings
from diffadapt.errors import InputError
from diffadapt.settings import field_default


def test_given_fields_win_and_the_rest_comes_from_the_defaults():
    defaults = SamplingSettings(method="ddim", steps=25, eta=1.0, spacing="trailing", clip_x0=True, guidance=3.0, guidance_interval=(0, 300))
    merged = SamplingSettings(steps=7, guidance_interval="all").over(defaults)
    assert merged == dataclasses.replace(defaults, steps=7, guidance_interval="all")
    assert SamplingSettings().over(defaults) == defaults


def test_another_method_does_not_inherit_the_defaults_eta():
    defaults = SamplingSettings(method="ddim", eta=1.0)
    assert SamplingSettings(method="unipc").over(defaults).eta == 0.0
    assert SamplingSettings(method="ddim").over(defaults).eta == 1.0  # the same method keeps its eta
    assert SamplingSettings(method="ddim", eta=0.5).over(SamplingSettings(method="unipc")).eta == 0.5


def test_another_method_does_not_inherit_the_defaults_guidance_interval():
    defaults = SamplingSettings(method="dpmpp-2m-sde", guidance=3.0, guidance_interval=(0, 300))
    assert SamplingSettings(method="ddim").over(defaults).guidance_interval == "all"
    assert SamplingSettings(method="ddim").over(defaults).guidance == 3.0  # the scale is not the method's
    assert SamplingSettings(method="dpmpp-2m-sde", steps=9).over(defaults).guidance_interval == (0, 300)
    assert SamplingSettings(method="ddim", guidance_interval=(10, 20)).over(defaults).guidance_interval == (10, 20)
    assert SamplingSettings(guidance=2.0).over(defaults).guidance_interval == (0, 300)


def test_an_embedding_settings_object_lays_over_as_plain_sampling_settings():
    part = DigitsPart(per_class=5, steps=4, clip_x0=False)
    merged = part.over(DIGIT_SAMPLING_FALLBACK)
    assert type(merged) is SamplingSettings and merged.steps == 4 and merged.clip_x0 is False
    assert merged.method == DIGIT_SAMPLING_FALLBACK.method


def test_bounds_and_help_are_the_running_configs():
    for name in ("method", "steps", "eta", "spacing", "clip_x0"):
        ours = next(f for f in dataclasses.fields(SamplingSettings) if f.name == name)
        theirs = next(f for f in dataclasses.fields(SamplerConfig) if f.name == name)
        assert dict(ours.metadata) == dict(theirs.metadata) and ours.default is None
    with pytest.raises(InputError, match="guidance: must be at most"):
        SamplingSettings(guidance=1e6)
    with pytest.raises(InputError, match="steps: must be at least 1"):
        SamplingSettings(steps=0)


def test_the_digit_fallback_is_the_samplers_defaults_but_for_clipping_and_guidance():
    assert DIGIT_SAMPLING_FALLBACK.clip_x0 is True and field_default(SamplerConfig, "clip_x0") is False
    assert DIGIT_SAMPLING_FALLBACK.guidance == 2.0 and DIGIT_SAMPLING_FALLBACK.guidance_interval is None
    for name in ("method", "steps", "eta", "spacing"):
        assert getattr(DIGIT_SAMPLING_FALLBACK, name) == field_default(SamplerConfig, name)
    # a checkpoint section names only what it changes; the rest is the fallback's
    assert checkpoint_sampling({"steps": 9}, None) == dataclasses.replace(DIGIT_SAMPLING_FALLBACK, steps=9)


def test_a_guidance_interval_is_checked_against_the_schedule():
    loaded = load_model(None)
    last = loaded.schedule.num_timesteps - 1
    sampler, guidance = loaded.sampling(SamplingSettings(guidance=5.0, guidance_interval=(3, last)))
    assert guidance == Guidance(5.0, (3, last)) and sampler == loaded.sampler()
    with pytest.raises(InputError, match=f"0 <= lo <= hi <= {last}"):
        loaded.sampling(SamplingSettings(guidance_interval=(3, last + 1)))


def test_every_sampling_setting_is_a_flag_of_the_digit_commands_and_a_key_of_the_report():
    parser = build_parser()
    for command in ("generate", "grid", "reverse"):
        args = parser.parse_args(["digits", command, "out", "--method", "unipc", "--steps", "3", "--eta", "0", "--spacing", "linspace",
                                  "--no-clip-x0", "--guidance", "2.5", "--guidance-interval", "4:40"])
        given = SamplingSettings(**{name: getattr(args, name) for name in SAMPLING_FIELDS})
        assert given == SamplingSettings(method="unipc", steps=3, eta=0.0, spacing="linspace", clip_x0=False, guidance=2.5, guidance_interval=(4, 40))
    for name in SAMPLING_FIELDS:
        assert name in {f.name for f in dataclasses.fields(DigitsPart)}
