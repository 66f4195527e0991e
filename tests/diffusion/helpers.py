"""Tiny diffusion models for fast tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffadapt.data import TensorImages, load_embedded
from diffadapt.diffusion.checkpoint import DIGITS_KIND
from diffadapt.diffusion.schedule import ScheduleConfig
from diffadapt.diffusion.train import DataInfo, TrainConfig, TrainResult, train_diffusion
from diffadapt.diffusion.unet import UNetConfig

# A short schedule that still ends in pure noise: alpha_bar_T = exp(-sum beta) ~ 4e-5.
TINY = dict(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), norm_groups=8)


def tiny_config(channels: int = 3, size: int = 28, **overrides) -> UNetConfig:
    return UNetConfig(image_size=size, in_channels=channels, **{**TINY, **overrides})


def embedded_classes(name: str, classes: tuple[int, ...]) -> TensorImages:
    train = load_embedded(name)["train"]
    keep = np.flatnonzero(np.isin(train.labels, classes))
    return TensorImages.from_digitset(train.subset(keep))


def train_tiny(
    run_dir: Path, data: TensorImages, steps: int, seed: int = 0, resume: bool = False, stop_after: int = 0,
    model: UNetConfig | None = None, schedule: ScheduleConfig = ScheduleConfig(100, 1e-3, 0.2), **overrides,
) -> TrainResult:
    config = TrainConfig(**{"steps": steps, "batch_size": 32, "lr": 2e-3, "warmup_steps": 10, "seed": seed,
                            "checkpoint_every": 0, "log_every": 10, **overrides})
    info = DataInfo(source="test", domain=data.domain, channels=data.channels, size=data.size[0], num_images=len(data))
    return train_diffusion(
        run_dir, data, model or tiny_config(data.channels, data.size[0]), schedule, config, info,
        DIGITS_KIND, resume=resume, progress=False, stop_after=stop_after,
    )
