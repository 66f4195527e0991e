"""Loading trained diffusion models for sampling, with the precision and layout that suit the device."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from diffadapt.device import resolve_precision
from diffadapt.diffusion.checkpoint import DIGITS_KIND, FACES_KIND, load_checkpoint
from diffadapt.diffusion.diffusers_format import is_diffusers_folder, read_diffusers_folder
from diffadapt.diffusion.guidance import Guidance, GuidedModel
from diffadapt.diffusion.noise_model import NoiseModel
from diffadapt.diffusion.sampler import SamplerConfig
from diffadapt.diffusion.sampling import SamplingSettings, check_interval_within
from diffadapt.diffusion.schedule import LinearSchedule, ScheduleConfig
from diffadapt.diffusion.unet import ConditionalUNet, UNetConfig
from diffadapt.errors import InputError
from diffadapt.io import CONFIG_FILE, check_weights_fit


def default_digits_checkpoint() -> Path:
    """The pretrained digit model shipped inside the package (see MODEL_CARD.md)."""
    return Path(str(resources.files("diffadapt").joinpath("assets", "digits_default")))


# The digit model's DDIM figures (eta grid, interpolation) use 10 DDIM steps with trailing spacing: deterministic
# sampling (eta 0) of the shipped model leaves high-frequency noise that grows with the number of steps (DDIM 250
# < 100 < 50 < 25 < 10 in legibility), from its eps predictions at low noise, whatever the clipping, spacing,
# guidance scale or interval (benchmarks/RESULTS.md, "DDIM figures on the digit model"); at 10 steps every eta
# row is legible.
DIGIT_FIGURE_STEPS = 10
DIGIT_FIGURE_SPACING = "trailing"


# Where a digit checkpoint's ``sampling`` section is silent: the sampler's own defaults, s = 2, and x0 clipped to
# [-1, 1], unlike the raw sampler and the course's face UNet: strong guidance drives unclipped x0 predictions far
# outside [-1, 1] at intermediate eta (measured on the shipped model, eta 0.5: output std 1.45, max 5.0).
DIGIT_SAMPLING_FALLBACK = SamplingSettings(clip_x0=True, guidance=2.0).completed()


def checkpoint_sampling(section: Any, source: Path | None) -> SamplingSettings:
    """A digit checkpoint's ``sampling`` section (a dict read from SOURCE) over the fallback: every field set."""
    return SamplingSettings.from_dict(section, source, "sampling").over(DIGIT_SAMPLING_FALLBACK)


def check_sampling_fits(section: Any, schedule_config: ScheduleConfig) -> None:
    """Refuse, before a training, a run whose sampling defaults (``section`` over the fallback) its own schedule
    cannot run, e.g. 10 default steps with T = 5: every load of the run would refuse it after the training."""
    schedule = LinearSchedule(schedule_config)
    settings = checkpoint_sampling(section or {}, None)
    try:
        settings.sampler_config(schedule), settings.guidance_config(schedule)
    except InputError as exc:
        raise InputError(f"timesteps {schedule.num_timesteps}: the run's default sampler would not fit its schedule ({exc})") from None


@dataclass
class LoadedModel:
    model: ConditionalUNet
    config: dict[str, Any]
    schedule: LinearSchedule
    device: torch.device
    bf16: bool
    defaults: SamplingSettings  # the checkpoint's, every field set (see checkpoint_sampling)
    model_file: Path | None = None  # the config.json that declared the network, for errors that name it

    @property
    def model_config(self) -> UNetConfig:
        return self.model.config

    def check_classes(self, labels: torch.Tensor | Sequence[int]) -> None:
        """Refuse a class the network was not trained on: label ``num_classes`` is its null (unconditional)
        class and anything above it indexes past the embedding, so neither may pass as a digit."""
        classes = self.model_config.num_classes
        if classes is None:
            raise InputError("an unconditional model cannot generate digits of a class")
        labels = torch.as_tensor(labels)
        if labels.numel() and int(labels.max()) >= classes:
            raise InputError(f"digit {int(labels.max())} is not a class of this model: its model.num_classes is {classes} "
                             f"(classes 0..{classes - 1})", self.model_file)

    def noise_model(self, guidance: Guidance | float, digit: int | None = None) -> NoiseModel:
        """This checkpoint as a :class:`NoiseModel`: guided eps(x, t) for each batch's labels, or with
        ``digit`` for that one class whatever the labels (the DDIM figures draw a digit model like a face
        model); x0 clipped as the checkpoint's sampling defaults say."""
        null = self.model_config.null_label
        if null is None:
            raise InputError("this checkpoint is unconditional; --digit needs a class-conditional digit model")
        if digit is not None:
            self.check_classes([digit])
        network = self.model

        def bind(labels: torch.Tensor | None) -> GuidedModel | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
            if digit is None:
                return GuidedModel(network, labels, guidance, null)

            def one_class(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return GuidedModel(network, torch.full((x.shape[0],), digit, device=x.device, dtype=torch.int64), guidance, null)(x, t)

            return one_class

        cfg = self.model_config
        name = "digit model" if digit is None else f"digit model, class {digit}"
        return NoiseModel(bind, self.schedule, name, network, self.device, self.bf16, self.defaults.clip_x0,
                          size_multiple=cfg.patch_size * 2 ** (len(cfg.channel_mults) - 1), source=self.model_file)

    @property
    def sampling_defaults(self) -> dict[str, Any]:
        """The checkpoint's sampling defaults as a dict (chosen when it was trained or shipped)."""
        return self.defaults.to_dict()

    def sampling(self, given: SamplingSettings | None = None) -> tuple[SamplerConfig, Guidance]:
        """The sampler and guidance of the caller's settings where given, the checkpoint's elsewhere."""
        settings = (given if given is not None else SamplingSettings()).over(self.defaults)
        return settings.sampler_config(self.schedule), settings.guidance_config(self.schedule)

    def sampler(self, method: str | None = None, steps: int | None = None, eta: float | None = None,
                spacing: str | None = None) -> SamplerConfig:
        """:meth:`sampling`'s sampler for these settings (None: the checkpoint's)."""
        return self.sampling(SamplingSettings(method=method, steps=steps, eta=eta, spacing=spacing))[0]

    def guidance(self, scale: float | None = None, interval: tuple[int, int] | str | None = None) -> Guidance:
        """:meth:`sampling`'s guidance for scale s and interval (None: the checkpoint's; ``"all"``: every step
        whatever the checkpoint says)."""
        check_interval_within(interval, self.schedule)
        return self.sampling(SamplingSettings(guidance=scale, guidance_interval=interval))[1]


def load_model(path: str | Path | None, kind: str = DIGITS_KIND, device: torch.device | str = "cpu", precision: str = "auto") -> LoadedModel:
    """A trained UNet in eval mode from a run folder (default: the shipped digit checkpoint), or from a
    diffusers folder (``digits export``'s, or any UNet2DModel that maps exactly onto ours; see
    diffusion/diffusers_format.py), read into our own ConditionalUNet without importing diffusers."""
    device = torch.device(device)
    if path is None:
        path = default_digits_checkpoint()
        if not (Path(path) / "config.json").is_file():
            raise InputError("the shipped default digit checkpoint is missing from this installation", path)
    if Path(path).is_file() and is_diffusers_folder(Path(path).parent):
        path = Path(path).parent  # FOLDER/unet/diffusion_pytorch_model.safetensors names its UNet folder
    if is_diffusers_folder(path):
        folder = read_diffusers_folder(path)
        found = DIGITS_KIND if folder.model_config.num_classes else FACES_KIND
        if found != kind:
            raise InputError(f"the diffusers folder holds a {found} model, expected a {kind} model", folder.unet_dir / CONFIG_FILE)
        # The same sections as our own run folders, so callers (reports, figures) cannot tell the difference.
        config = {"kind": kind, "model": folder.model_config.to_dict(), "schedule": folder.schedule.to_dict(),
                  "sampling": folder.sampling if folder.sampling is not None else DIGIT_SAMPLING_FALLBACK.to_dict(),
                  "source": "diffusers folder", "path": str(path)}
        model_config, weights, weights_source = folder.model_config, folder.state, folder.unet_dir
        schedule_config, sampling_source = folder.schedule, folder.sampling_source
    else:
        config, weights = load_checkpoint(path, kind)
        source = Path(path) / CONFIG_FILE if Path(path).is_dir() else Path(path).parent / CONFIG_FILE
        for section in ("model", "schedule"):
            if section not in config:
                raise InputError(f"config has no {section!r} section", source)
        model_config = UNetConfig.from_dict(config["model"], source, "model")
        schedule_config = ScheduleConfig.from_dict(config["schedule"], source, "schedule")
        data = config.get("data")
        data_size = data.get("size") if isinstance(data, dict) else None
        if data_size is not None and data_size != model_config.image_size:
            # The network is size-agnostic, so its weights load at any size: only the record of its data says
            # that 1024 is a forged 28 (whose attention would then ask for 64 GB).
            raise InputError(f"model.image_size {model_config.image_size} differs from data.size {data_size!r}, the size it was trained at", source)
        weights_source, sampling_source = Path(path), source
    with torch.device("meta"):  # sizes only: a config.json declaring a huge network fails here, not in the allocator
        check_weights_fit(ConditionalUNet(model_config).state_dict(), weights, weights_source)
    model = ConditionalUNet(model_config)
    model.load_state_dict(weights, strict=True)
    model = model.to(device).eval().requires_grad_(False)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    schedule = LinearSchedule(schedule_config)
    defaults = checkpoint_sampling(config.get("sampling", {}), sampling_source)
    model_file = folder.unet_dir / CONFIG_FILE if config.get("source") == "diffusers folder" else sampling_source
    loaded = LoadedModel(model, config, schedule, device, resolve_precision(precision, device), defaults, model_file)
    try:  # the defaults against this schedule's T: a bad interval or step count fails here, naming the file
        loaded.sampling()
    except InputError as exc:
        raise InputError(f"sampling: {exc}", sampling_source) from None
    return loaded
