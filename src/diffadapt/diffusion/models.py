"""Loading trained diffusion models for sampling, with the precision and layout that suit the device."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from diffadapt.diffusion.checkpoint import DIGITS_KIND, load_checkpoint, load_state_dict_strict
from diffadapt.diffusion.guidance import Guidance
from diffadapt.diffusion.sampler import SamplerConfig
from diffadapt.diffusion.schedule import LinearSchedule, ScheduleConfig
from diffadapt.diffusion.unet import ConditionalUNet, UNetConfig
from diffadapt.errors import InputError


def default_digits_checkpoint() -> Path:
    """The pretrained digit model shipped inside the package (see MODEL_CARD.md)."""
    return Path(str(resources.files("diffadapt").joinpath("assets", "digits_default")))


@dataclass
class LoadedModel:
    model: ConditionalUNet
    config: dict[str, Any]
    schedule: LinearSchedule
    device: torch.device
    bf16: bool

    @property
    def model_config(self) -> UNetConfig:
        return self.model.config

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    @property
    def sampling_defaults(self) -> dict[str, Any]:
        """The ``sampling`` section of the checkpoint's config (chosen when it was trained or shipped)."""
        return self.config.get("sampling", {})

    def guidance(self, scale: float | None = None, interval: tuple[int, int] | str | None = None) -> Guidance:
        """The caller's guidance scale s and interval where given, else the checkpoint's (else s = 2, all steps).

        ``interval="all"`` asks for guidance at every step whatever the checkpoint says.
        """
        defaults = self.sampling_defaults
        scale = float(scale) if scale is not None else float(defaults.get("guidance", 2.0))
        if interval is None:
            interval = defaults.get("guidance_interval")
        if interval == "all" or interval is None:
            return Guidance(scale)
        try:
            lo, hi = (int(v) for v in interval)
        except (TypeError, ValueError):
            raise InputError(f"guidance interval must be [lo, hi] or 'all', got {interval!r}") from None
        if not 0 <= lo <= hi or hi >= self.schedule.num_timesteps:
            raise InputError(f"guidance interval {lo}..{hi} must satisfy 0 <= lo <= hi <= {self.schedule.num_timesteps - 1} (the schedule's last timestep)")
        return Guidance(scale, (lo, hi))

    def sampler(self, method: str | None = None, steps: int | None = None, eta: float | None = None) -> SamplerConfig:
        """A SamplerConfig with the caller's settings where given, the checkpoint's elsewhere."""
        defaults = self.sampling_defaults
        return SamplerConfig(
            method=method or defaults.get("method", "ddim"), steps=steps or defaults.get("steps", 50),
            eta=eta if eta is not None else defaults.get("eta", 0.0), clip_x0=defaults.get("clip_x0", True),
        )


def cpu_bf16_supported() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> bool:
    """True for bf16 autocast. auto: bf16 on CUDA, and on CPUs with native bf16 (twice as fast there)."""
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    if precision != "auto":
        raise InputError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16_supported())


def load_model(path: str | Path | None, kind: str = DIGITS_KIND, device: torch.device | str = "cpu", precision: str = "auto") -> LoadedModel:
    """A trained UNet in eval mode from a run folder (default: the shipped digit checkpoint)."""
    device = torch.device(device)
    if path is None:
        path = default_digits_checkpoint()
        if not (Path(path) / "config.json").is_file():
            raise InputError("the shipped default digit checkpoint is missing from this installation", path)
    config, weights = load_checkpoint(path, kind)
    model = ConditionalUNet(UNetConfig.from_dict(config["model"]))
    load_state_dict_strict(model, weights, Path(path))
    model = model.to(device).eval().requires_grad_(False)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    schedule = LinearSchedule(ScheduleConfig(**config["schedule"]))
    return LoadedModel(model, config, schedule, device, resolve_precision(precision, device))
