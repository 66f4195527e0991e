"""DDPM: the forward process, the ancestral step, and the loop against diffusers' DDPMScheduler."""

from __future__ import annotations

import pytest
import torch

from diffadapt.diffusion.ddpm import ddpm_step
from diffadapt.diffusion.sampler import SamplerConfig, sample
from diffadapt.diffusion.schedule import LinearSchedule, ScheduleConfig


def test_schedule_matches_definition():
    schedule = LinearSchedule(ScheduleConfig(500, 1e-4, 0.02))
    assert schedule.betas.dtype == torch.float64 and len(schedule.betas) == 500
    assert schedule.alpha_bars[0] == pytest.approx(1 - 1e-4)
    assert schedule.alpha_bars[-1] == pytest.approx(torch.prod(1 - torch.linspace(1e-4, 0.02, 500, dtype=torch.float64)).item())


def test_q_sample_statistics():
    schedule = LinearSchedule()
    x0 = torch.ones(20000, 1, 1, 1)
    t = torch.full((20000,), 250)
    x_t = schedule.q_sample(x0, t, torch.randn(20000, 1, 1, 1, generator=torch.Generator().manual_seed(0)))
    ab = float(schedule.alpha_bars[250])
    assert x_t.mean().item() == pytest.approx(ab**0.5, abs=0.02)
    assert x_t.var().item() == pytest.approx(1 - ab, abs=0.02)


def test_step_equals_paper_form_without_clipping():
    schedule = LinearSchedule()
    g = torch.Generator().manual_seed(0)
    x_t, eps, z = (torch.randn(2, 3, 4, 4, generator=g) for _ in range(3))
    t = 123
    beta, alpha, ab = (float(v[t]) for v in (schedule.betas, schedule.alphas, schedule.alpha_bars))
    paper = (x_t - beta / (1 - ab) ** 0.5 * eps) / alpha**0.5 + beta**0.5 * z
    torch.testing.assert_close(ddpm_step(x_t, eps, t, schedule, z, variance="beta"), paper, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("clip", [False, True])
def test_loop_matches_diffusers_ddpm(clip):
    diffusers = pytest.importorskip("diffusers")
    config = ScheduleConfig(50, 1e-3, 0.2)
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=50, beta_start=1e-3, beta_end=0.2, beta_schedule="linear", clip_sample=clip, variance_type="fixed_small")
    scheduler.set_timesteps(50)
    weight = torch.randn(3, 3, generator=torch.Generator().manual_seed(3)) * 0.3

    def eps_model(x, t):
        return torch.tanh(torch.einsum("oc,bchw->bohw", weight, x)) * (1 + t.float()[:, None, None, None] / 50)

    x_T = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    ours = sample(eps_model, x_T, LinearSchedule(config), SamplerConfig("ddpm", clip_x0=clip), generator=torch.Generator().manual_seed(5))
    reference = x_T.clone()
    generator = torch.Generator().manual_seed(5)
    for t in scheduler.timesteps.tolist():
        eps = eps_model(reference, torch.full((2,), t))
        reference = scheduler.step(eps, t, reference, generator=generator).prev_sample
    assert torch.allclose(ours, reference, atol=1e-5, rtol=1e-5), (ours - reference).abs().max()
