"""Classifier-free guidance: the formula, one batched forward, the guidance interval, and the frequency split."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from diffadapt.diffusion.guidance import Guidance, GuidedModel, guided_epsilon
from diffadapt.diffusion.sampler import SamplerConfig, sample
from diffadapt.diffusion.schedule import LinearSchedule, ScheduleConfig
from diffadapt.errors import InputError

NULL = 10


class RecordingModel(nn.Module):
    """eps depends on x, t and the label, and every call's batch is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(NULL + 1, 3)
        torch.nn.init.normal_(self.embed.weight, generator=torch.Generator().manual_seed(0))
        self.batches: list[tuple[int, list[int]]] = []

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.batches.append((x.shape[0], labels.tolist()))
        return torch.tanh(x * 0.7 + self.embed(labels)[:, :, None, None] + t[:, None, None, None] / 100.0)


def test_scale_is_one_plus_w_of_the_course_form():
    eps_cond, eps_uncond = torch.randn(2, 4, 3, 5, 5).unbind(0)
    w = 2.0
    assert torch.allclose(guided_epsilon(eps_cond, eps_uncond, 1 + w), (1 + w) * eps_cond - w * eps_uncond, atol=1e-6)


def test_frequency_split_guidance_by_hand():
    eps_uncond = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    s, r = 3.0, 0.25
    flat = torch.full((1, 3, 4, 4), 0.5)  # all coarse: L(d) = d, so the share of the fine band does not matter
    assert torch.allclose(guided_epsilon(eps_uncond + flat, eps_uncond, s, r), eps_uncond + s * flat, atol=1e-6)
    checker = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2 * 2.0 - 1.0  # every 2x2 block averages to 0
    fine = checker.expand(1, 3, 4, 4)
    expected = eps_uncond + (1 + r * (s - 1)) * fine  # all fine: 1 + 0.25 * 2 = 1.5
    assert torch.allclose(guided_epsilon(eps_uncond + fine, eps_uncond, s, r), expected, atol=1e-6)
    eps_cond = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(guided_epsilon(eps_cond, eps_uncond, s, 1.0), guided_epsilon(eps_cond, eps_uncond, s))
    # r = 0 on odd sizes (28 / 2 = 14, 5 -> 3 with ceil_mode): the split still adds back to d
    odd_cond, odd_uncond = torch.randn(2, 2, 3, 5, 5).unbind(0)
    both = guided_epsilon(odd_cond, odd_uncond, 1.0, 0.0)  # s = 1: the conditional model whatever r
    assert torch.allclose(both, odd_cond, atol=1e-6)


@pytest.mark.parametrize("share", [-0.5, 4.5, float("nan"), "half", True])
def test_a_bad_high_frequency_share_is_refused_naming_it(share):
    with pytest.raises(InputError, match="high_frequency_share"):
        Guidance(3.0, high_frequency_share=share)


def test_frequency_split_guidance_runs_through_the_guided_model():
    model = RecordingModel()
    x, t, labels = torch.randn(2, 3, 6, 6), torch.full((2,), 10), torch.tensor([1, 2])
    split = GuidedModel(model, labels, Guidance(3.0, high_frequency_share=0.0), NULL)(x, t)
    by_hand = guided_epsilon(model(x, t, labels), model(x, t, torch.full_like(labels, NULL)), 3.0, 0.0)
    assert torch.allclose(split, by_hand, atol=1e-6)
    assert not torch.allclose(split, GuidedModel(model, labels, 3.0, NULL)(x, t), atol=1e-3)
    assert str(Guidance(3.0, (0, 300), 0.25)) == "s 3, high-frequency share 0.25 at t 0..300"


def test_one_batched_forward_equals_two_separate_ones():
    model = RecordingModel()
    x, t, labels = torch.randn(4, 3, 5, 5), torch.full((4,), 37), torch.tensor([0, 3, 7, 9])
    guided = GuidedModel(model, labels, 3.0, NULL)(x, t)
    assert model.batches == [(8, [0, 3, 7, 9] + [NULL] * 4)]
    separate = guided_epsilon(model(x, t, labels), model(x, t, torch.full_like(labels, NULL)), 3.0)
    assert torch.allclose(guided, separate, atol=1e-6)


def test_outside_the_interval_only_the_conditional_half_runs():
    model = RecordingModel()
    x, labels = torch.randn(2, 3, 5, 5), torch.tensor([1, 2])
    guided = GuidedModel(model, labels, Guidance(4.0, (20, 60)), NULL)
    for t, expected in [(19, model(x, torch.full((2,), 19), labels)), (61, model(x, torch.full((2,), 61), labels))]:
        model.batches.clear()
        assert torch.equal(guided(x, torch.full((2,), t)), expected)
        assert model.batches == [(2, [1, 2])], f"t = {t} is outside the interval: one conditional forward"
    for t in (20, 40, 60):
        inside = guided(x, torch.full((2,), t))
        full = GuidedModel(model, labels, 4.0, NULL)(x, torch.full((2,), t))
        assert torch.equal(inside, full), f"t = {t} is inside the interval: full guidance"


def test_interval_sampling_counts_forwards_and_matches_full_guidance_when_it_covers_every_step():
    schedule = LinearSchedule(ScheduleConfig(100, 1e-3, 0.2))
    x_T, labels = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(1)), torch.tensor([4, 5])
    config = SamplerConfig("ddim", steps=10, eta=1.0)  # visits t = 90, 80, ..., 0
    runs = {}
    for name, guidance in {"full": Guidance(3.0), "cover": Guidance(3.0, (0, 99)), "part": Guidance(3.0, (25, 65))}.items():
        model = RecordingModel()
        runs[name] = sample(GuidedModel(model, labels, guidance, NULL), x_T, schedule, config, torch.Generator().manual_seed(2))
        runs[name + "_batches"] = [size for size, _ in model.batches]
    assert torch.equal(runs["full"], runs["cover"])
    assert runs["part_batches"] == [2, 2, 2, 4, 4, 4, 4, 2, 2, 2], "guided (batch 4) exactly at t = 60, 50, 40, 30"
    assert not torch.allclose(runs["full"], runs["part"])


@pytest.mark.parametrize("interval", [(5, 4), (-1, 3)])
def test_bad_interval_is_refused(interval):
    with pytest.raises(ValueError, match="interval"):
        Guidance(2.0, interval)


def test_str_names_scale_and_interval():
    assert str(Guidance(4.0)) == "s 4"
    assert str(Guidance(2.5, (56, 405))) == "s 2.5 at t 56..405"
