"""Training an unconditional face model: the ``faces train`` flow and the face UNet's shape policy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from diffadapt.data.face_images import read_face_images
from diffadapt.data.memory import TensorImages
from diffadapt.diffusion.checkpoint import FACES_KIND
from diffadapt.diffusion.models import check_sampling_fits
from diffadapt.diffusion.schedule import ScheduleConfig
from diffadapt.diffusion.train import DataInfo, TrainConfig, TrainResult, refuse_resume_overrides, resume_configs, train_diffusion
from diffadapt.diffusion.unet import UNetConfig
from diffadapt.errors import InputError
from diffadapt.images import nhwc_to_nchw
from diffadapt.settings import Settings, field_default, is_whole_number, number

# Settings of a face run that differ from TrainConfig's digit-oriented defaults.
FACE_TRAIN_DEFAULTS: dict[str, Any] = {"epochs": 50.0, "batch_size": 64, "p_uncond": 0.0}
MIN_SIZE, MAX_SIZE = 16, 256


@dataclass
class FaceRunSettings(Settings):
    """A new face run's images and network: the one source of these defaults (``faces train`` reads its options
    from here). The bounds of base_channels and timesteps are UNetConfig's and ScheduleConfig's, checked there."""

    size: int = number(64, at_least=MIN_SIZE, at_most=MAX_SIZE, help="image side, 16..256, halvable three times (four from 64)")
    limit: int = number(0, at_least=0, help="use only the first N images (0: all)")
    base_channels: int = number(64, help="channels of the first level")
    timesteps: int = number(1000, help="T of the linear schedule")


def face_model_config(size: int, base_channels: int = field_default(FaceRunSettings, "base_channels")) -> UNetConfig:
    """The face UNet for size x size images: four levels (1, 2, 2, 2) from 64 pixels up, three below,
    attention on the second-to-last level (8x8 at 64 pixels), no classes."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise InputError(f"face size must be in {MIN_SIZE}..{MAX_SIZE}, got {size}")
    levels = (1, 2, 2, 2) if size >= 64 else (1, 2, 2)
    return UNetConfig(image_size=size, in_channels=3, base_channels=base_channels, channel_mults=levels, num_res_blocks=2,
                      attention_levels=(len(levels) - 2,), num_classes=None, norm_groups=32)


def train_faces(
    images_source: str | Path, out: Path, run: FaceRunSettings | None = None, train: dict[str, Any] | None = None, resume: bool = False,
    device: torch.device | None = None, progress: bool = True, tensorboard: str | Path | None = None,
) -> TrainResult:
    """Train an unconditional DDPM on a folder or .zip of face images (centre-cropped, resized) into ``out``;
    ``run``: the new run's images and network (default FaceRunSettings()); a resumed run keeps its own and
    refuses ``run`` or ``train`` given beside it."""
    out = Path(out)
    if resume:
        refuse_resume_overrides(run.to_dict() if run is not None else None, train)
    run = run or FaceRunSettings()
    size, limit = run.size, run.limit
    if resume:
        config, model_config, schedule_config, train_config = resume_configs(out)
        data = config.get("data")
        extra = data.get("extra", {}) if isinstance(data, dict) else None
        images_source, size, limit = (data.get("source"), data.get("size"), extra.get("limit", 0)) if isinstance(extra, dict) else (None,) * 3
        if not isinstance(images_source, str) or not is_whole_number(size) or not is_whole_number(limit) or limit < 0:
            raise InputError("config's data section lacks source, size or limit to resume from", out / "config.json")
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise InputError(f"data.size must be in {MIN_SIZE}..{MAX_SIZE}, got {size}", out / "config.json")
        if size != model_config.image_size:
            # The network's own size decides; a different data.size would feed it images it was not built for.
            raise InputError(f"data.size {size} differs from model.image_size {model_config.image_size}", out / "config.json")
    else:
        if (out / "config.json").exists():
            raise InputError("run folder already holds a run; pass --resume to continue it or choose another --out", out)
        model_config = face_model_config(size, run.base_channels)
        schedule_config = ScheduleConfig(run.timesteps, 1e-4, 0.02)
        train_config = TrainConfig(**{**FACE_TRAIN_DEFAULTS, **(train or {})})
    check_sampling_fits(None, schedule_config)  # before reading the images, which can take a minute
    images = read_face_images(images_source, size, limit, progress)
    data = TensorImages(nhwc_to_nchw(images), torch.full((len(images),), -1), "faces")
    info = DataInfo(source=str(images_source), domain="faces", channels=3, size=size, num_images=len(data), extra={"limit": limit})
    return train_diffusion(out, data, model_config, schedule_config, train_config, info, FACES_KIND, resume=resume,
                           device=device or torch.device("cpu"), progress=progress, tensorboard=tensorboard)
