"""The training loop's parts: compile_with_fallback and the counters of TrainState."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from diffadapt.diffusion.train import TrainConfig, TrainState, compile_with_fallback


def first_step_of(layer: nn.Linear, generator: torch.Generator):
    """A training step's shape: draws from the noise stream, leaves gradients; returns its loss."""
    def step(module: nn.Module) -> torch.Tensor:
        noise = torch.randn(4, 3, generator=generator)
        loss = module(noise).square().mean()
        loss.backward()
        return loss.detach()
    return step


def test_a_failing_compile_falls_back_mode_by_mode_to_eager(monkeypatch):
    def broken_compile(module, mode=None):
        def call(*args):
            torch.randn(7, generator=generator)  # a failed attempt may have drawn noise and left gradients
            module(*args).sum().backward()
            raise RuntimeError(f"backend failed ({mode})")
        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    torch.manual_seed(0)
    layer = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module, mode, loss = compile_with_fallback(layer, TrainConfig(compile=True, compile_mode="max-autotune"), first_step_of(layer, generator),
                                                   generator, optimizer)
    assert module is layer and mode == "eager"
    assert [str(w.message).split(":")[0] for w in caught] == ["torch.compile (mode max-autotune) failed, trying the next mode",
                                                              "torch.compile (mode default) failed, trying the next mode"]

    # Exactly one eager step's noise and gradients, as if compilation had never been tried.
    torch.manual_seed(0)
    fresh = nn.Linear(3, 1)
    fresh_generator = torch.Generator().manual_seed(5)
    expected = first_step_of(fresh, fresh_generator)(fresh)
    assert torch.equal(loss, expected)
    assert torch.equal(generator.get_state(), fresh_generator.get_state())
    assert torch.equal(layer.weight.grad, fresh.weight.grad)


def test_without_compile_one_eager_attempt_and_its_error_is_raised():
    layer = nn.Linear(3, 1)
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    module, mode, _ = compile_with_fallback(layer, TrainConfig(), first_step_of(layer, generator), generator, optimizer)
    assert module is layer and mode == "eager"

    def failing(module):
        raise ValueError("a real bug in the step")

    with pytest.raises(ValueError, match="a real bug"):
        compile_with_fallback(layer, TrainConfig(), failing, generator, optimizer)


def test_train_state_counts_steps_and_windows():
    state = TrainState(step=10, loss_sum=torch.zeros(()), tick=0.0)
    state.add_step(torch.tensor(2.0), 8)
    state.add_step(torch.tensor(4.0), 8)
    assert (state.step, state.loss_count, state.images_seen, state.window_images) == (12, 2, 16, 16)
    loss, rate = state.close_window()
    assert loss == 3.0 and state.last_loss == 3.0 and rate > 0
    assert (state.loss_count, state.window_images, float(state.loss_sum)) == (0, 0, 0.0)
    state.add_step(torch.tensor(1.0), 8)
    state.restart_clock(discard_window=True)
    assert state.window_images == 0 and state.images_seen == 24
