"""Random values for every field of every config: the only outcomes allowed are a valid config or the
project's one-line InputError (never a TypeError, a crash later on, or a NaN that slips through)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diffadapt.adapt.config import AdaptConfig
from diffadapt.apps.report.config import AdaptPart, DDIMPart, DigitsPart, ReportConfig
from diffadapt.diffusion.guidance import Guidance
from diffadapt.diffusion.sampler import SamplerConfig
from diffadapt.diffusion.sampling import SamplingSettings
from diffadapt.diffusion.schedule import ScheduleConfig
from diffadapt.diffusion.train import TrainConfig
from diffadapt.diffusion.unet import UNetConfig
from diffadapt.errors import InputError
from diffadapt.evaluate.accuracy_score import ScoreConfig
from diffadapt.evaluate.judge import JudgeTrainConfig

CONFIGS = [UNetConfig, ScheduleConfig, SamplerConfig, TrainConfig, AdaptConfig, SamplingSettings, Guidance, ScoreConfig,
           JudgeTrainConfig, DigitsPart, DDIMPart, AdaptPart, ReportConfig]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["ddim", "dpmpp-2m", "unipc", "ddpm", "leading", "trailing", "matched", "report", "dann", "fixmatch", "auto", "fp32", "all"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)


def field_names(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def all_finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (list, tuple)):
        return all(all_finite(v) for v in value)
    if dataclasses.is_dataclass(value):
        return all(all_finite(getattr(value, f.name)) for f in dataclasses.fields(value))
    return True


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
@given(data=st.data())
def test_any_values_give_a_config_or_an_input_error(cls, data):
    names = field_names(cls)
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=min(4, len(names)), unique=True))
    document = {name: data.draw(values) for name in chosen}
    try:
        config = cls.from_dict(document, "config.json", cls.__name__)
    except InputError as error:
        message = str(error)
        assert "\n" not in message and message.startswith("config.json")
        return
    assert all_finite(config), config
    assert dataclasses.replace(config) == config  # a valid config passes its own checks again
