"""Training a digit model from a data source: the ``digits train`` flow (read, configure, train, save)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from diffadapt.data import TensorImages, read_source
from diffadapt.data.sources import labelled_train
from diffadapt.diffusion.checkpoint import DIGITS_KIND
from diffadapt.diffusion.models import DIGIT_SAMPLING_FALLBACK, check_sampling_fits, checkpoint_sampling, load_model
from diffadapt.diffusion.sampling import SamplingSettings
from diffadapt.diffusion.schedule import ScheduleConfig
from diffadapt.diffusion.train import (
    DataInfo,
    TrainConfig,
    TrainResult,
    refuse_resume_overrides,
    resume_configs,
    seconds_per_step,
    train_diffusion,
)
from diffadapt.diffusion.unet import UNetConfig
from diffadapt.errors import InputError
from diffadapt.io import CONFIG_FILE, SHIPPED

RecipeName = Literal["auto", "standard", "cpu"]
AUTO_RECIPE = "auto"  # cpu for a new network trained on a CPU, standard on a GPU or for --init-from / --resume


@dataclass(frozen=True)
class DigitRecipe:
    """A starting point for ``digits train``: overrides of TrainConfig and UNetConfig fields (the user's own
    options win over them), the sampling section its runs get (over the digit fallback; None: none), and what
    the recipe reached when it was measured (``measured``: the step and the course accuracy of 1,000 images
    there with that sampling, from benchmarks/RESULTS.md, "Training on the CPU"), for the expected time."""

    train: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    sampling: SamplingSettings | None = None
    measured: tuple[int, float] | None = None


DIGIT_RECIPES: dict[str, DigitRecipe] = {
    "standard": DigitRecipe(),
    # The better of two candidates on 2 CPU cores (benchmarks/RESULTS.md, "Training on the CPU"): a network of a
    # quarter of the shipped one's arithmetic (base 16: 1.0 M parameters) at batch 64 and lr 1e-3, 7,200
    # cosine-decayed steps in 28 minutes of an AVX-512 bf16 CPU (more updates beat larger batches here), sampled
    # with s = 4 at every one of 10 trailing DPM-Solver++(2M) SDE steps (higher judge accuracy than the shipped
    # model's guidance interval on this undertrained network; 20 forwards an image).
    "cpu": DigitRecipe(train={"steps": 7200, "batch_size": 64, "lr": 1e-3, "warmup_steps": 200, "lr_schedule": "cosine"},
                       model={"base_channels": 16, "norm_groups": 8},
                       sampling=SamplingSettings(method="dpmpp-2m-sde", steps=10, spacing="trailing", guidance=4.0, guidance_interval="all"),
                       measured=(7200, 0.991)),
}


def resolve_recipe(recipe: str, device: torch.device, continues: bool) -> str:
    """The recipe a run gets: ``auto`` is ``cpu`` for a new network trained on a CPU (the standard one would take
    hours there) and ``standard`` on a GPU or where the run ``continues`` a network (--init-from, --resume),
    whose settings are its own; any other recipe for such a run is refused."""
    if recipe == AUTO_RECIPE:
        return "cpu" if device.type == "cpu" and not continues else "standard"
    if recipe not in DIGIT_RECIPES:
        raise InputError(f"recipe must be one of {AUTO_RECIPE}, {', '.join(DIGIT_RECIPES)}, got {recipe!r}")
    if recipe != "standard" and continues:
        raise InputError(f"--recipe {recipe} starts a new network; --resume and --init-from take theirs from a run or checkpoint")
    return recipe


def expected_time_note(recipe: DigitRecipe, model_config: UNetConfig, train_config: TrainConfig, device: torch.device) -> str:
    """E.g. "step 7,200 (99% course accuracy on real MNIST-M when measured) in about 28 min here (0.23 s a step)", the step
    time measured on this device now; empty for a recipe never measured."""
    if recipe.measured is None:
        return ""
    step, accuracy = recipe.measured
    seconds = seconds_per_step(model_config, train_config, device)
    return (f"step {step:,} ({accuracy:.0%} course accuracy on real MNIST-M when measured) in about {step * seconds / 60:.0f} min here "
            f"({seconds:.2f} s a step)")


def train_digits(
    data_spec: str, out: Path, train: dict[str, Any] | None = None, schedule: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None, size: int | None = None, resume: bool = False, stop_after: int = 0,
    device: torch.device | None = None, progress: bool = True, tensorboard: str | Path | None = None,
    init_from: str | Path | None = None, recipe: RecipeName = AUTO_RECIPE, report: Callable[[str], None] = lambda line: None,
) -> TrainResult:
    """Train a class-conditional UNet on the labelled training split of ``data_spec`` into ``out``.

    ``train``, ``schedule`` and ``model`` override fields of TrainConfig, ScheduleConfig and UNetConfig (their
    defaults otherwise); the image size and channels come from the data (``size`` resizes). ``resume``
    continues the run in ``out`` with its own settings, and refuses overrides given beside it. ``init_from`` (a digit
    checkpoint, ``"default"`` for the shipped one) fine-tunes: its weights, network and noise schedule are
    the start, so ``schedule``, ``model`` and ``size`` must not be given; the run's config records it.
    ``recipe`` (see DIGIT_RECIPES; ``auto``: :func:`resolve_recipe`) sets the starting values of a new run;
    ``report`` receives the line that says when the recipe is expected to reach the accuracy measured for it,
    timed on this device.
    """
    out = Path(out)
    if stop_after < 0:
        raise InputError(f"stop_after must be 0 or more, got {stop_after}")
    if size is not None and not 8 <= size <= 256:
        raise InputError(f"size must be in 8..256, got {size}")
    device = device or torch.device("cpu")
    recipe = resolve_recipe(recipe, device, resume or init_from is not None)
    chosen = DIGIT_RECIPES[recipe]
    given_train, given_model = train, model
    train, model = {**chosen.train, **(train or {})}, {**chosen.model, **(model or {})}
    init_weights, sampling, started_from = None, None, init_from
    if chosen.sampling is not None:  # the recipe's sampler and guidance, until the user chooses others
        sampling = chosen.sampling.over(DIGIT_SAMPLING_FALLBACK).to_dict()
    if init_from is not None and resume:
        raise InputError("--init-from starts a new run; --resume continues one from its own state")
    if init_from is not None and (schedule or model or size is not None):
        raise InputError("--init-from takes the network, its size and its noise schedule from the checkpoint; drop the model and schedule options")
    if resume:
        refuse_resume_overrides(given_train, schedule, given_model, {"size": size} if size is not None else None)
        config, model_config, schedule_config, train_config = resume_configs(out)
        if "sampling" in config:  # a fine-tuned run's, taken from its start, or a recipe's
            sampling = checkpoint_sampling(config["sampling"], out / CONFIG_FILE).to_dict()
        data_section = config.get("data")
        data_spec = data_section.get("source") if isinstance(data_section, dict) else None
        if not isinstance(data_spec, str):
            raise InputError("config has no data.source to resume from", out / CONFIG_FILE)
        extra = data_section.get("extra")
        if isinstance(extra, dict) and isinstance(extra.get("init_from"), str):
            started_from = extra["init_from"]  # a fine-tuned run keeps the record of its start
    else:
        if (out / CONFIG_FILE).exists():
            raise InputError("run folder already holds a run; pass --resume to continue it or choose another --out", out)
        train_config = TrainConfig(**(train or {}))
        schedule_config = ScheduleConfig(**(schedule or {}))
        if init_from is not None:
            start = load_model(None if str(init_from) == SHIPPED else init_from, kind=DIGITS_KIND)
            model_config, schedule_config = start.model_config, start.schedule.config
            init_weights = start.model.state_dict()
            sampling = start.sampling_defaults  # the start's sampler and guidance until the user chooses others
    check_sampling_fits(sampling, schedule_config)  # before reading the data, which can take a minute
    # A generative model has no use for a val split: it trains on the whole train split.
    train_set = labelled_train(read_source(data_spec, seed=0))
    if not train_set.labelled:
        raise InputError("training a conditional model needs labelled images", data_spec)
    # A resumed run resizes its data to the network's size, as when it started; channels and classes must fit.
    continued = init_weights is not None or resume
    if continued and (train_set.channels != model_config.in_channels or (init_weights is not None and train_set.size[0] != model_config.image_size)):
        raise InputError(f"the data's {train_set.size[0]}x{train_set.size[0]} images with {train_set.channels} channels do not fit the checkpoint's "
                         f"{model_config.image_size}x{model_config.image_size} x {model_config.in_channels}", data_spec)
    if continued and model_config.num_classes is not None and int(train_set.labels.max()) >= model_config.num_classes:
        raise InputError(f"the data's labels reach {int(train_set.labels.max())}, but the checkpoint's model.num_classes is "
                         f"{model_config.num_classes}", init_from if init_weights is not None else out / CONFIG_FILE)
    if not resume and init_weights is None:
        model_config = UNetConfig(**{"image_size": size or train_set.size[0], "in_channels": train_set.channels, "num_classes": 10, **(model or {})})
    data = TensorImages.from_digitset(train_set, size=model_config.image_size, device=device)
    info = DataInfo(source=str(data_spec), domain=train_set.domain, channels=data.channels, size=model_config.image_size, num_images=len(data),
                    extra={"init_from": str(started_from)} if started_from is not None else {})
    note = expected_time_note(chosen, model_config, train_config, device)
    if note:
        report(f"recipe {recipe}: {note}")
    return train_diffusion(out, data, model_config, schedule_config, train_config, info, DIGITS_KIND, resume=resume, device=device,
                           progress=progress, stop_after=stop_after, tensorboard=tensorboard, init_weights=init_weights,
                           sampling=sampling, progress_note=f"{chosen.measured[1]:.0%} expected at step {chosen.measured[0]:,}" if note else "")
