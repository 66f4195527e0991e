"""DPM-Solver++(2M) and UniPC: timesteps, the pure steps, and the whole sampler against diffusers' schedulers."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from diffadapt.diffusion.ddim import ddim_step
from diffadapt.diffusion.dpmpp_2m import dpmpp_2m_order, dpmpp_2m_step
from diffadapt.diffusion.sampler import SamplerConfig, sample
from diffadapt.diffusion.schedule import LinearSchedule, ScheduleConfig
from diffadapt.diffusion.timesteps import ddim_timesteps, multistep_timesteps, quadratic_timesteps
from diffadapt.diffusion.unipc import unic_step, unip_step, unipc_order
from diffadapt.errors import InputError

COURSE = ScheduleConfig(num_timesteps=1000, beta_start=1e-4, beta_end=0.02)
SOLVERS = ("dpmpp-2m", "unipc")
# diffusers' set_timesteps calls np.array on a tensor, which numpy 2 warns about: theirs, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


def reference_scheduler(method: str, num_train_timesteps: int, spacing: str):
    diffusers = pytest.importorskip("diffusers")
    cls = {"dpmpp-2m": diffusers.DPMSolverMultistepScheduler, "dpmpp-2m-sde": diffusers.DPMSolverMultistepScheduler,
           "unipc": diffusers.UniPCMultistepScheduler}[method]
    extra = {"algorithm_type": "sde-dpmsolver++"} if method == "dpmpp-2m-sde" else {}
    return cls(num_train_timesteps=num_train_timesteps, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", timestep_spacing=spacing, **extra)


def alpha_bar_at(lam: float) -> float:
    """alpha_bar with lambda = log(alpha / sigma) = lam, i.e. sigmoid(2 lam): lets a test pick h and r."""
    return 1.0 / (1.0 + math.exp(-2.0 * lam))


def scalar(value: float) -> torch.Tensor:
    return torch.tensor([value])


# --- timesteps -------------------------------------------------------------------------------------------


def test_leading_differs_from_ddims():
    assert multistep_timesteps(1000, 5, "leading") == [830, 664, 498, 332, 166]


@pytest.mark.parametrize("method", SOLVERS)
@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
def test_timesteps_match_diffusers(method, spacing):
    for num_train_timesteps in (1000, 500):
        scheduler = reference_scheduler(method, num_train_timesteps, spacing)
        for steps in range(1, 101):
            scheduler.set_timesteps(steps)
            theirs = scheduler.timesteps.tolist()
            # np.arange(T, 0, -T / n) can overshoot by one value near 0, which diffusers turns into a
            # timestep of -1 (e.g. T = 1000, n = 61): a step we do not take.
            if spacing == "trailing" and len(theirs) == steps + 1:
                assert theirs[-1] == -1
                theirs = theirs[:-1]
            assert multistep_timesteps(num_train_timesteps, steps, spacing) == theirs, (num_train_timesteps, steps)


def test_quadratic_timesteps():
    assert quadratic_timesteps(500, 6) == [499, 347, 222, 125, 55, 14]
    assert quadratic_timesteps(1000, 1) == [999]
    for num_train_timesteps, most in ((500, 54), (1000, 77)):
        for steps in range(1, most + 1):
            ours = quadratic_timesteps(num_train_timesteps, steps)
            formula = [round((num_train_timesteps - 1) * ((steps - k) / steps) ** 2) for k in range(steps)]
            assert ours == formula and ours == sorted(set(ours), reverse=True), steps
            assert ddim_timesteps(num_train_timesteps, steps, "quadratic") == ours
            assert multistep_timesteps(num_train_timesteps, steps, "quadratic") == ours
        with pytest.raises(ValueError, match="repeat"):
            quadratic_timesteps(num_train_timesteps, most + 1)


def test_config_rejects_too_many_steps_and_repeated_timesteps():
    schedule = LinearSchedule(COURSE)
    with pytest.raises(InputError):
        SamplerConfig("unipc", 1001).timesteps(schedule)
    with pytest.raises(InputError, match="repeat"):  # 1000 // 1001 = 0: every timestep would be 0
        SamplerConfig("dpmpp-2m", 1000).timesteps(schedule)
    assert SamplerConfig("dpmpp-2m", 999).timesteps(schedule)[-1] == 1
    for method in ("ddim", "dpmpp-2m-sde", "unipc"):
        with pytest.raises(InputError, match="repeat"):
            SamplerConfig(method, 78, spacing="quadratic").timesteps(schedule)


def test_orders_are_diffusers():
    # First step: no history; last step: lower_order_final (to sigma = 0); between: second order.
    assert [dpmpp_2m_order(i, 5) for i in range(5)] == [1, 2, 2, 2, 1]
    assert [unipc_order(i, 5) for i in range(5)] == [1, 2, 2, 2, 1]
    assert [unipc_order(i, 2) for i in range(2)] == [1, 1] and unipc_order(0, 1) == 1


# --- pure steps on hand-computed cases ---------------------------------------------------------------------


def test_first_order_step_by_hand_and_equals_ddim():
    # alpha_bar 0.25 -> 0.64: alpha_s = 0.5, sigma_s = sqrt(0.75), alpha_t = 0.8, sigma_t = 0.6,
    # e^{-h} = (sigma_t / alpha_t) / (sigma_s / alpha_s) = 0.75 / sqrt(3).
    x, x0 = scalar(1.0), scalar(0.5)
    expected = 0.6 / 0.75**0.5 * 1.0 - 0.8 * (0.75 / 3**0.5 - 1.0) * 0.5
    out = dpmpp_2m_step(x, x0, 0.25, 0.64)
    assert out.item() == pytest.approx(expected, abs=1e-6)
    eps = (x - 0.5 * x0) / 0.75**0.5
    torch.testing.assert_close(out, ddim_step(x, eps, 0.25, 0.64))
    torch.testing.assert_close(unip_step(x, x0, 0.25, 0.64), out, rtol=0, atol=0)


def test_last_step_returns_the_data_prediction():
    x, x0 = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.equal(dpmpp_2m_step(x, x0, 0.9, 1.0), x0)
    with pytest.raises(ValueError):
        dpmpp_2m_step(x, x0, 0.9, 1.0, x0, 0.8)


def test_second_order_step_by_hand():
    # lambda_r, lambda_s, lambda_t = -1, 0, 1: h = 1, r = 1, so D = 1.5 x0_s - 0.5 x0_r.
    ab_r, ab_s, ab_t = alpha_bar_at(-1.0), alpha_bar_at(0.0), alpha_bar_at(1.0)
    sigma_s, alpha_t, sigma_t = (1 - ab_s) ** 0.5, ab_t**0.5, (1 - ab_t) ** 0.5
    expected = sigma_t / sigma_s * 0.9 - alpha_t * (math.exp(-1.0) - 1.0) * (1.5 * 2.0 - 0.5 * 1.0)
    out = dpmpp_2m_step(scalar(0.9), scalar(2.0), ab_s, ab_t, scalar(1.0), ab_r)
    assert out.item() == pytest.approx(expected, abs=1e-6)


def exact_solution(x_s: float, lam_s: float, lam_t: float, c: tuple[float, float, float]) -> float:
    """x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lam_s}^{lam_t} e^lam x0(lam) dlam for x0(lam) = c0 + c1 lam + c2 lam^2."""
    def primitive(lam):
        return math.exp(lam) * (c[0] + c[1] * (lam - 1.0) + c[2] * (lam * lam - 2.0 * lam + 2.0))
    sigma_s, sigma_t = (1 - alpha_bar_at(lam_s)) ** 0.5, (1 - alpha_bar_at(lam_t)) ** 0.5
    return sigma_t / sigma_s * x_s + sigma_t * (primitive(lam_t) - primitive(lam_s))


@pytest.mark.parametrize("lams", [(-1.0, 0.0, 1.0), (-0.5, 0.1, 0.4), (-2.0, -1.2, 0.3)])
def test_unic_2_is_exact_for_quadratic_data_predictions(lams):
    # UniC-p solves the order conditions up to degree p in lambda, with the one model call at t.
    lam_r, lam_s, lam_t = lams
    c = (0.3, -0.7, 0.4)
    x0 = {lam: scalar(c[0] + c[1] * lam + c[2] * lam * lam) for lam in lams}
    ab = {lam: alpha_bar_at(lam) for lam in lams}
    corrected = unic_step(scalar(0.9), x0[lam_s], ab[lam_s], ab[lam_t], x0[lam_t], x0[lam_r], ab[lam_r])
    assert corrected.item() == pytest.approx(exact_solution(0.9, lam_s, lam_t, c), abs=1e-6)
    # UniP-2 (DPM-Solver++(2M)) is not: the corrector is what the extra accuracy comes from.
    predicted = unip_step(scalar(0.9), x0[lam_s], ab[lam_s], ab[lam_t], x0[lam_r], ab[lam_r])
    assert abs(predicted.item() - exact_solution(0.9, lam_s, lam_t, c)) > 1e-3


def test_unic_1_is_the_trapezoid_of_the_first_order_step():
    x, x0_s, x0_t = torch.randn(3), torch.randn(3), torch.randn(3)
    corrected = unic_step(x, x0_s, 0.3, 0.6, x0_t)
    torch.testing.assert_close(corrected, dpmpp_2m_step(x, (x0_s + x0_t) / 2, 0.3, 0.6))


# --- the sampler against diffusers ---------------------------------------------------------------------


def make_eps_model(schedule: LinearSchedule):
    """The exact eps of Gaussian data N(0.3, 0.5^2) plus a fixed random conv's time-dependent perturbation:
    samples stay O(1), so an absolute tolerance of 1e-5 is a strict one."""
    generator = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1).double()
    with torch.no_grad():
        for parameter in conv.parameters():
            parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    alpha_bars = schedule.alpha_bars

    @torch.no_grad()
    def eps_model(x, t):
        ab = alpha_bars[t].view(-1, 1, 1, 1)
        exact = (1 - ab).sqrt() / (ab * 0.25 + 1 - ab) * (x.double() - ab.sqrt() * 0.3)
        return (exact + 0.1 * torch.tanh(conv(x.double()) * (1 + t.double().view(-1, 1, 1, 1) / 500))).float()

    return eps_model


CASES = [(1000, "leading", 5), (1000, "leading", 10), (1000, "leading", 20), (500, "linspace", 10), (500, "trailing", 10), (500, "trailing", 7)]


@pytest.mark.parametrize(("num_train_timesteps", "spacing", "steps"), CASES)
def test_sde_sampler_matches_diffusers_with_the_same_noise(num_train_timesteps, spacing, steps):
    """DPM-Solver++(2M) SDE: the same per-step noise (one normal tensor per step, in order) fed to both."""
    schedule = LinearSchedule(ScheduleConfig(num_train_timesteps, 1e-4, 0.02))
    eps_model = make_eps_model(schedule)
    x_T = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ours = sample(eps_model, x_T, schedule, SamplerConfig("dpmpp-2m-sde", steps, spacing=spacing), torch.Generator().manual_seed(7))

    scheduler = reference_scheduler("dpmpp-2m-sde", num_train_timesteps, spacing)
    scheduler.set_timesteps(steps)
    generator = torch.Generator().manual_seed(7)
    x = x_T.clone()
    for t in scheduler.timesteps.tolist():
        noise = torch.randn(x.shape, generator=generator)
        x = scheduler.step(eps_model(x, torch.full((2,), t, dtype=torch.int64)), t, x, variance_noise=noise).prev_sample
    assert torch.allclose(ours, x, atol=1e-5, rtol=0), (ours - x).abs().max()
    plain = sample(eps_model, x_T, schedule, SamplerConfig("dpmpp-2m", steps, spacing=spacing))
    assert not torch.allclose(ours, plain, atol=1e-3)


@pytest.mark.parametrize("method", SOLVERS)
@pytest.mark.parametrize(("num_train_timesteps", "spacing", "steps"), CASES)
def test_sampler_matches_diffusers(method, num_train_timesteps, spacing, steps):
    schedule = LinearSchedule(ScheduleConfig(num_train_timesteps, 1e-4, 0.02))
    eps_model = make_eps_model(schedule)
    x_T = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ours = sample(eps_model, x_T, schedule, SamplerConfig(method, steps, spacing=spacing))

    scheduler = reference_scheduler(method, num_train_timesteps, spacing)
    scheduler.set_timesteps(steps)
    x = x_T.clone()
    for t in scheduler.timesteps.tolist():
        x = scheduler.step(eps_model(x, torch.full((2,), t, dtype=torch.int64)), t, x).prev_sample
    assert ours.abs().max() < 10
    assert torch.allclose(ours, x, atol=1e-5, rtol=0), (ours - x).abs().max()


def set_custom_timesteps(scheduler, timesteps: list[int], alpha_bars: torch.Tensor) -> None:
    """Custom timesteps in a diffusers scheduler: DPM-Solver's own ``set_timesteps(timesteps=...)``; UniPC has
    no such argument, so it is set up for the step count and then given the timesteps. Both then get the sigmas
    that their own code computes for any timestep list (sigma = sqrt((1 - alpha_bar) / alpha_bar) at each
    timestep, then a final sigma of 0), but from our float64 alpha_bar table: quadratic spacing visits
    t = 1..5, where diffusers' float32 table alone moves its SDE result by about 1e-5 (with the float64 one it
    agrees with ours to 1e-6)."""
    if "timesteps" in inspect.signature(scheduler.set_timesteps).parameters:
        scheduler.set_timesteps(timesteps=timesteps)
    else:
        scheduler.set_timesteps(len(timesteps))
        scheduler.timesteps = torch.tensor(timesteps, dtype=torch.int64)
    alpha_bars = alpha_bars.double()[timesteps]
    scheduler.sigmas = torch.cat([((1 - alpha_bars) / alpha_bars).sqrt(), torch.zeros(1, dtype=torch.float64)])


QUADRATIC_CASES = [(500, 5), (500, 10), (500, 20), (1000, 10)]


@pytest.mark.parametrize("method", ("dpmpp-2m", "dpmpp-2m-sde", "unipc"))
@pytest.mark.parametrize(("num_train_timesteps", "steps"), QUADRATIC_CASES)
def test_quadratic_spacing_matches_diffusers_custom_timesteps(method, num_train_timesteps, steps):
    schedule = LinearSchedule(ScheduleConfig(num_train_timesteps, 1e-4, 0.02))
    eps_model = make_eps_model(schedule)
    x_T = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    config = SamplerConfig(method, steps, spacing="quadratic")
    ours = sample(eps_model, x_T, schedule, config, torch.Generator().manual_seed(7))

    scheduler = reference_scheduler(method, num_train_timesteps, "trailing")
    set_custom_timesteps(scheduler, config.timesteps(schedule), schedule.alpha_bars)
    generator = torch.Generator().manual_seed(7)
    x = x_T.double()
    for t in scheduler.timesteps.tolist():
        extra = {"variance_noise": torch.randn(x.shape, generator=generator).double()} if method == "dpmpp-2m-sde" else {}
        eps = eps_model(x.float(), torch.full((2,), t, dtype=torch.int64)).double()
        x = scheduler.step(eps, t, x, **extra).prev_sample
    assert ours.abs().max() < 10
    assert torch.allclose(ours.double(), x, atol=1e-5, rtol=0), (ours - x).abs().max()
    trailing = sample(eps_model, x_T, schedule, SamplerConfig(method, steps, spacing="trailing"), torch.Generator().manual_seed(7))
    assert not torch.allclose(ours, trailing, atol=1e-3)


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n


@pytest.mark.parametrize("method", SOLVERS)
def test_callback_and_progress_see_every_step(method):
    schedule = LinearSchedule(COURSE)
    seen, bar = [], Counter()
    x_T = torch.randn(1, 3, 8, 8)
    config = SamplerConfig(method, 5)
    out = sample(make_eps_model(schedule), x_T, schedule, config, callback=lambda t, x: seen.append((t, x.clone())), progress=bar)
    assert [t for t, _ in seen] == [831, 665, 499, 333, 167, 0] and bar.n == 5
    assert torch.equal(seen[0][1], x_T) and torch.equal(seen[-1][1], out)
    torch.testing.assert_close(sample(make_eps_model(schedule), x_T, schedule, config, progress=True), out, rtol=0, atol=0)


@pytest.mark.parametrize("method", SOLVERS)
def test_clip_x0_bounds_the_result(method):
    # The last step returns the (clipped) data prediction. (These solvers have no eta: SamplerConfig refuses
    # one, see test_eta_is_refused_by_the_solvers_that_have_none; it used to be accepted and ignored here.)
    schedule = LinearSchedule(COURSE)
    x_T = 3 * torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    clipped = sample(make_eps_model(schedule), x_T, schedule, SamplerConfig(method, 10, clip_x0=True))
    assert clipped.abs().max() <= 1.0
    free = sample(make_eps_model(schedule), x_T, schedule, SamplerConfig(method, 10, clip_x0=False))
    assert free.abs().max() > 1.0


@pytest.mark.parametrize("method", SOLVERS)
def test_eta_is_refused_by_the_solvers_that_have_none(method):
    with pytest.raises(InputError, match=f"eta 1 applies to DDIM only; the {method} sampler has no eta"):
        SamplerConfig(method, 10, eta=1.0)
    assert SamplerConfig(method, 10, eta=0.0).eta == 0.0


def test_sampling_builds_no_autograd_graph_and_refuses_non_finite_results():
    # A trainable network (parameters requiring grad) must not make the sampler keep a graph of every step.
    schedule = LinearSchedule(COURSE)
    network = torch.nn.Conv2d(3, 3, 1)
    x_T = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = sample(lambda x, t: network(x), x_T, schedule, SamplerConfig("ddim", 3))
    assert not out.requires_grad and out.grad_fn is None
    with torch.no_grad():
        network.weight.fill_(1e38)  # finite, but every output overflows
    with pytest.raises(InputError, match="sampling produced NaN or infinite values"):
        sample(lambda x, t: network(x), x_T, schedule, SamplerConfig("ddim", 3))
