"""A noise-prediction network ready to sample, whatever it is, and the one batched sampler over it.

Every model the toolkit samples (a digit checkpoint with its guidance, the course's face UNet, a diffusers
UNet2DModel, a faces run) is a :class:`NoiseModel`: ``bind(labels)`` gives the network as eps(x, t) for one
batch's labels (None for an unconditional network, or a digit model fixed to one class). bf16 autocast is
applied here, once, when the model asks for it. :func:`sample_batched` runs a sampler over many noises in
batches, with per-image noise streams, so results do not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from diffadapt.device import bf16_autocast
from diffadapt.diffusion.sampler import EpsModel, SamplerConfig, per_sample_generators, sample
from diffadapt.diffusion.schedule import LinearSchedule
from diffadapt.errors import InputError
from diffadapt.progress import progress_bar

SAMPLING_BATCH_SIZE = 10  # images per forward pass of sample_batched (memory only: results do not depend on it)

MAX_SIZE_FACTOR = 2  # noise sides up to twice a network's training size


@dataclass
class NoiseModel:
    """A noise-prediction network with the schedule it was trained on.

    ``bind(labels)`` -> eps(x, t): x (B, C, H, W) float in model scale, t (B,) int64, labels (B,) int64 or
    None; the returned callable runs without autocast (:meth:`eps` adds it)."""

    bind: Callable[[torch.Tensor | None], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]
    schedule: LinearSchedule
    name: str
    module: torch.nn.Module
    device: torch.device
    bf16: bool
    clip_x0: bool = False  # the course's faces: no clipping; digit checkpoints: their own default
    size_multiple: int = 1  # image sides the network accepts are multiples of this (its halvings)
    trained_size: int | None = None  # the side of its training images, where known
    source: Path | None = None  # the file or folder it was read from

    def eps(self, labels: torch.Tensor | None = None) -> EpsModel:
        """eps(x, t) for these labels, in float32, under bf16 autocast when the model runs in bf16."""
        network = self.bind(labels)

        def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            with bf16_autocast(self.device, self.bf16):
                return network(x, t).float()

        return eps

    @property
    def in_channels(self) -> int:
        """Channels of the images it denoises: the input of its first convolution (every UNet here starts with one)."""
        first = next(m for m in self.module.modules() if isinstance(m, torch.nn.Conv2d))
        return first.in_channels

    def check_noise(self, noise: torch.Tensor, source: str | Path | None = None) -> None:
        """Noise (N, C, H, W) this network can denoise: sides multiples of its halvings and at most
        ``MAX_SIZE_FACTOR`` times its training size: attention over all positions can need memory that grows
        with the fourth power of the side, and a network says nothing meaningful far beyond its training size."""
        h, w = noise.shape[-2:]
        if noise.shape[-3] != self.in_channels:
            raise InputError(f"noise has {noise.shape[-3]} channels; {self.name} denoises {self.in_channels}-channel images", source)
        if h < self.size_multiple or h % self.size_multiple or w % self.size_multiple:
            raise InputError(f"noise of size {h}x{w} does not fit {self.name}: sides must be multiples of {self.size_multiple}", source)
        if self.trained_size and max(h, w) > MAX_SIZE_FACTOR * self.trained_size:
            raise InputError(f"noise of size {h}x{w} is too large for {self.name}, trained on {self.trained_size}x{self.trained_size} images: "
                             f"sides must be at most {MAX_SIZE_FACTOR * self.trained_size}", source)


def sample_batched(
    model: NoiseModel, x_T: torch.Tensor, sampler: SamplerConfig, seed: int = 0, batch_size: int = SAMPLING_BATCH_SIZE, progress: bool = True,
    labels: torch.Tensor | None = None, indices: Sequence[int] | None = None, callback: Callable[[int, int, torch.Tensor], None] | None = None,
    description: str | None = None,
) -> torch.Tensor:
    """Run ``sampler`` from the given noises x_T (N, C, H, W); returns raw float32 outputs (N, C, H, W) on the CPU.

    ``labels`` (N,) go with the noises to the model, batch by batch; ``indices`` name the images for their
    per-step noise (default 0 .. N-1; see ``sampler.per_sample_generators``), so a stochastic sampler gives
    the same image whatever the batch size; ``callback(batch_index, t, x)`` sees each batch's reverse process
    (see ``sampler.Callback``). ``sampler.clip_x0`` should follow the model's convention (``clip_x0``).
    """
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    model.check_noise(x_T)
    steps = len(sampler.timesteps(model.schedule))  # checked against the schedule before any work
    indices = list(range(len(x_T))) if indices is None else list(indices)
    starts = range(0, len(x_T), batch_size)
    bar = progress_bar(len(starts) * steps, description or f"sampling {len(x_T)} images", "step", enabled=progress)
    outputs = []
    for batch_index, start in enumerate(starts):
        x = x_T[start : start + batch_size].to(model.device)
        if model.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        eps = model.eps(labels[start : start + batch_size].to(model.device) if labels is not None else None)
        step_callback = None
        if callback is not None:
            step_callback = lambda t, x, b=batch_index: callback(b, t, x)  # noqa: E731
        generators = per_sample_generators(seed, indices[start : start + batch_size], model.device)
        try:
            outputs.append(sample(eps, x, model.schedule, sampler, generators, step_callback, progress=bar if progress else False).cpu())
        except InputError as exc:
            raise InputError(f"{model.name}: {exc}", model.source) from None
    bar.close()
    return torch.cat(outputs)
