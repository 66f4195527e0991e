"""DDIM: timesteps, the pure step, and the whole sampler against diffusers' DDIMScheduler."""

from __future__ import annotations

import pytest
import torch

from diffadapt.diffusion.ddim import ddim_sigma, ddim_step
from diffadapt.diffusion.sampler import SamplerConfig, sample
from diffadapt.diffusion.schedule import LinearSchedule, ScheduleConfig
from diffadapt.diffusion.timesteps import ddim_timesteps
from diffadapt.diffusion.unet import ConditionalUNet, UNetConfig

COURSE = ScheduleConfig(num_timesteps=1000, beta_start=1e-4, beta_end=0.02)


def test_course_timesteps():
    steps = ddim_timesteps(1000, 50, "leading")
    assert steps[:3] == [980, 960, 940] and steps[-1] == 0 and len(steps) == 50


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_spacings_match_diffusers(spacing):
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
    for steps in (*range(1, 101), 250):
        scheduler.set_timesteps(steps)
        # diffusers' trailing sometimes appends a step at t = -1 (its arange overshoots); we stop at n steps
        assert ddim_timesteps(1000, steps, spacing) == scheduler.timesteps.tolist()[:steps], steps


def test_eta_zero_is_deterministic_and_eta_one_matches_ddpm_variance():
    schedule = LinearSchedule(COURSE)
    ab_t, ab_prev = float(schedule.alpha_bars[500]), float(schedule.alpha_bars[499])
    beta_tilde = (1 - ab_prev) / (1 - ab_t) * float(schedule.betas[500])
    assert ddim_sigma(ab_t, ab_prev, 0.0) == 0.0
    assert ddim_sigma(ab_t, ab_prev, 1.0) == pytest.approx(beta_tilde**0.5, rel=1e-12)


def test_step_recovers_x0_when_eps_is_exact():
    torch.manual_seed(0)
    x0, eps = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    schedule = LinearSchedule(COURSE)
    ab = float(schedule.alpha_bars[700])
    x_t = ab**0.5 * x0 + (1 - ab) ** 0.5 * eps
    out = ddim_step(x_t, eps, ab, 1.0)
    torch.testing.assert_close(out, x0, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = ConditionalUNet(UNetConfig(image_size=16, in_channels=3, base_channels=16, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), num_classes=None))
    # The output layer starts at zero; give it weights so that eps is not trivially 0.
    torch.nn.init.normal_(model.conv_out.weight, std=0.05)
    return model.eval().double()


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_sampler_matches_diffusers_ddim(tiny_model, eta):
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DDIMScheduler(
        num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
        clip_sample=False, set_alpha_to_one=True, timestep_spacing="leading",
    )
    scheduler.set_timesteps(50)
    x_T = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    alpha_bars = LinearSchedule(COURSE).alpha_bars

    def eps_model(x, t):
        # The exact eps of Gaussian data N(0.3, 0.5^2) plus a random UNet's perturbation: samples stay
        # O(1), so an absolute tolerance of 1e-5 is a strict one.
        ab = alpha_bars[t].view(-1, 1, 1, 1)
        exact = (1 - ab).sqrt() / (ab * 0.25 + 1 - ab) * (x.double() - ab.sqrt() * 0.3)
        return (exact + 0.1 * torch.tanh(tiny_model(x.double(), t))).float()

    ours = sample(eps_model, x_T.float(), LinearSchedule(COURSE), SamplerConfig("ddim", 50, eta), generator=torch.Generator().manual_seed(7))

    reference_noise = torch.Generator().manual_seed(7)
    x = x_T.float()
    timesteps = scheduler.timesteps.tolist()
    for index, t in enumerate(timesteps):
        eps = eps_model(x, torch.full((2,), t, dtype=torch.int64))
        last = index == len(timesteps) - 1
        noise = torch.randn(x.shape, generator=reference_noise) if eta > 0 and not last else None
        x = scheduler.step(eps, t, x, eta=eta, variance_noise=noise).prev_sample
    assert ours.abs().max() < 10
    assert torch.allclose(ours, x, atol=1e-5, rtol=0), (ours - x).abs().max()


def test_callback_sees_noise_first_and_result_last(tiny_model):
    seen = []
    x_T = torch.randn(1, 3, 16, 16)
    out = sample(lambda x, t: tiny_model(x.double(), t).float(), x_T, LinearSchedule(COURSE), SamplerConfig("ddim", 5), callback=lambda t, x: seen.append((t, x.clone())))
    assert [t for t, _ in seen] == [801, 601, 401, 201, 1, 0]
    assert torch.equal(seen[0][1], x_T) and torch.equal(seen[-1][1], out)
