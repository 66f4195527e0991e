"""The Python API: the objects the command line uses, for notebooks and scripts.

    import diffadapt
    model = diffadapt.load_digits()                  # the shipped class-conditional digit model
    sevens = model.generate(7, n=10)                 # (10, 28, 28, 3) uint8 RGB, a seed fixes them

Everything here is a thin layer over the applications (``diffadapt.apps``): the same checks, the same
defaults, the same files. Images come back as uint8 numpy arrays (N, H, W, C) in [0, 255], or PIL images
with ``as_pil=True``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from diffadapt.adapt.config import FolderAdaptConfig, preset
from diffadapt.adapt.trainer import AdaptResult
from diffadapt.apps.adaptation.predict import predict_folder, predict_images, target_tensors
from diffadapt.apps.adaptation.runs import DomainSource, LoadedRun, load_run, shipped_model, train_runs
from diffadapt.apps.adaptation.tsne import MAX_TSNE_PER_DOMAIN, tsne_figures
from diffadapt.apps.digits.export import export_diffusers
from diffadapt.apps.digits.generate import initial_noise, sample_digits, to_images
from diffadapt.apps.digits.training import AUTO_RECIPE
from diffadapt.apps.digits.training import train_digits as train_digit_run
from diffadapt.apps.faces.models import course_sampler, load_face_model, to_graded_images
from diffadapt.data import DigitSet
from diffadapt.data.types import NUM_CLASSES
from diffadapt.device import pick_device
from diffadapt.diffusion.models import LoadedModel, load_model
from diffadapt.diffusion.noise_model import NoiseModel, sample_batched
from diffadapt.diffusion.sampling import SamplingSettings, check_interval_within
from diffadapt.diffusion.schedule import ScheduleConfig
from diffadapt.diffusion.train import TrainConfig
from diffadapt.diffusion.unet import UNetConfig
from diffadapt.errors import InputError
from diffadapt.settings import MAX_RUN_SEEDS, SEED_BOUNDS, short_repr

MAX_GENERATED = 100_000  # images one generate() call returns (235 MB of uint8 at 28x28 RGB)
DOMAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")  # a domain names folders and table rows: no path, no control characters


def _as_output(images: np.ndarray, as_pil: bool) -> np.ndarray | list[Image.Image]:
    if not as_pil:
        return images
    return [Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image) for image in images]


def _whole_number(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int when it is a whole number in low..high (a numpy integer too, never a bool), else
    InputError naming the argument: the rule the CLI's options follow."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        raise InputError(f"{name} must be a whole number in {low}..{high}, got {value!r}")
    return int(value)


def _seed(name: str, value: Any) -> int:
    """A seed argument: a whole number in the range every seed of the package has (settings.SEED_BOUNDS)."""
    return _whole_number(name, value, SEED_BOUNDS["at_least"], SEED_BOUNDS["below"] - 1)


def _path(name: str, value: Any, optional: bool = False) -> Path | None:
    """A path argument: text or an os.PathLike (None where ``optional``), else InputError naming the argument."""
    if value is None and optional:
        return None
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise InputError(f"{name} must be a path (text or a pathlib.Path){' or None' if optional else ''}, got {value!r:.60}")
    return Path(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{name} must be True or False, got {value!r:.60}")
    return value


def _run(value: Any) -> LoadedRun:
    if not isinstance(value, LoadedRun):
        raise InputError(f"run must be a loaded adaptation run (diffadapt.load_adaptation(...)), got {value!r:.60}")
    return value


def _domain(name: str, value: Any) -> DomainSource:
    """A domain argument: a source spec (text or path), a DigitSet, or a dict of them by split."""
    if isinstance(value, DigitSet) or (isinstance(value, dict) and value and all(isinstance(k, str) and isinstance(v, DigitSet)
                                                                                  for k, v in value.items())):
        return value
    if isinstance(value, (str, os.PathLike)):
        return str(_path(name, value))
    raise InputError(f"{name} must be a source spec (text or a path), a DigitSet or a dict of DigitSets by split (see diffadapt.digits), "
                     f"got {type(value).__name__}")


@dataclass
class DigitModel:
    """A class-conditional digit model ready to sample (the shipped one, a ``digits train`` run, or an
    exported diffusers folder)."""

    loaded: LoadedModel
    ckpt: str | Path | None = None  # where it was loaded from (None: the shipped model)

    @property
    def sampling_defaults(self) -> dict[str, Any]:
        """The checkpoint's sampler and guidance, used unless :meth:`generate` is told otherwise."""
        return self.loaded.sampling_defaults

    def generate(self, digits: int | Sequence[int], n: int = 1, method: str | None = None, steps: int | None = None,
                 eta: float | None = None, guidance: float | None = None, guidance_interval: tuple[int, int] | str | None = None,
                 seed: int = 0, as_pil: bool = False, progress: bool = False,
                 spacing: str | None = None, guidance_high_frequency: float | None = None) -> np.ndarray | list[Image.Image]:
        """``n`` images of each digit in ``digits`` (in that order): (len(digits) * n, 28, 28, 3) uint8 in [0, 255].

        method / steps / eta / spacing / guidance / guidance_interval / guidance_high_frequency (frequency-split
        guidance's share r, diffusion/guidance.py) default to the checkpoint's sampling defaults
        (``sampling_defaults``), but a method other than the checkpoint's takes eta 0 and guidance at every step
        unless they are given; ``seed`` fixes the initial and per-step noise.
        """
        if isinstance(digits, np.ndarray) and digits.ndim == 0:
            digits = digits.item()
        _flag("as_pil", as_pil), _flag("progress", progress)
        single = isinstance(digits, (int, np.integer)) and not isinstance(digits, (bool, np.bool_))
        if not single and (isinstance(digits, (str, bytes, bool, np.bool_)) or not isinstance(digits, (Sequence, np.ndarray))):
            raise InputError(f"digits must be a whole number in 0..9 or a sequence of them, got {digits!r}")
        classes = [_whole_number("digits", d, 0, NUM_CLASSES - 1) for d in ([digits] if single else list(digits))]
        if not classes:
            raise InputError("digits must name at least one digit, got an empty sequence")
        n = _whole_number("n", n, 1, MAX_GENERATED)
        if len(classes) * n > MAX_GENERATED:
            raise InputError(f"len(digits) * n must be at most {MAX_GENERATED:,} images, got {len(classes):,} * {n:,}")
        seed = _seed("seed", seed)
        check_interval_within(guidance_interval, self.loaded.schedule)
        sampler, guided = self.loaded.sampling(SamplingSettings(method=method, steps=steps, eta=eta, spacing=spacing, guidance=guidance,
                                                                guidance_interval=guidance_interval,
                                                                guidance_high_frequency=guidance_high_frequency))
        labels = torch.tensor(classes).repeat_interleave(n)
        cfg = self.loaded.model_config
        x_T = initial_noise(len(labels), (cfg.in_channels, cfg.image_size, cfg.image_size), seed)
        x0 = sample_digits(self.loaded, labels, x_T, sampler, guided, seed, progress=progress)
        return _as_output(to_images(x0), as_pil)

    def export_diffusers(self, out: str | Path, overwrite: bool = False) -> Path:
        """Write this model as a diffusers folder (UNet2DModel with class embeddings + scheduler config)."""
        return export_diffusers(self.ckpt, _path("out", out), _flag("overwrite", overwrite))


def load_digits(ckpt: str | Path | None = None, device: str = "auto", precision: str = "auto") -> DigitModel:
    """The digit model of ``ckpt`` (a run folder or an exported diffusers folder; None: the shipped model)."""
    return DigitModel(load_model(_path("ckpt", ckpt, optional=True), device=pick_device(device), precision=precision), ckpt)


def train_digits(out: str | Path, data: str | Path = "mnistm", device: str = "auto", progress: bool = True,
                 init_from: str | Path | None = None, recipe: str = AUTO_RECIPE, **settings: Any) -> DigitModel:
    """Train a digit model on ``data`` (a source spec; default: the embedded MNIST-M) into the run folder ``out``.

    ``settings`` are fields of ``TrainConfig`` (steps, epochs, batch_size, lr, ...), ``ScheduleConfig``
    (num_timesteps, beta_start, beta_end) or ``UNetConfig`` (base_channels, channel_mults, ...).
    ``init_from`` fine-tunes a digit checkpoint ("default": the shipped one) with its network and schedule;
    ``recipe`` ("auto", "standard" or "cpu", see ``digits train --recipe``; auto: cpu for a new network on a CPU)
    sets the starting values under ``settings``.
    """
    out, data, init_from = _path("out", out), _path("data", data), _path("init_from", init_from, optional=True)
    _flag("progress", progress)
    groups: dict[str, dict[str, Any]] = {"train": {}, "schedule": {}, "model": {}}
    for key, value in settings.items():
        owner = next((name for name, cls in (("train", TrainConfig), ("schedule", ScheduleConfig), ("model", UNetConfig))
                      if key in cls.__dataclass_fields__), None)
        if owner is None:
            raise InputError(f"unknown training setting {key!r}")
        groups[owner][key] = value
    train_digit_run(str(data), out, groups["train"], groups["schedule"], groups["model"], device=pick_device(device), progress=progress,
                    init_from=init_from, recipe=recipe)
    return load_digits(out, device)


@dataclass
class FaceModel:
    """A pretrained noise-prediction UNet (the course's UNet.pt, a diffusers UNet2DModel folder, a faces run)."""

    model: NoiseModel

    def sample(self, noise: torch.Tensor, steps: int | None = None, eta: float | None = None, method: str | None = None, seed: int = 0,
               as_pil: bool = False) -> np.ndarray | list[Image.Image]:
        """Images from the given noise (N, 3, H, W) or (3, H, W) float: the graded rule (per-image min-max to
        [0, 255]), (N, H, W, 3) uint8. steps / eta / method: None is the graded setting (``course_sampler``)."""
        seed, as_pil = _seed("seed", seed), _flag("as_pil", as_pil)
        try:
            if isinstance(noise, (str, bytes)) or noise is None or torch.as_tensor(noise).is_complex():
                raise TypeError
            noise = torch.as_tensor(noise, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            raise InputError(f"noise must be a real tensor or array (N, C, H, W) or (C, H, W), got {short_repr(noise)}") from None
        noise = noise[None] if noise.ndim == 3 else noise
        if noise.ndim != 4 or len(noise) == 0 or not bool(torch.isfinite(noise).all()):
            raise InputError(f"noise must be finite (N, C, H, W) with N >= 1, or (C, H, W), got shape {tuple(noise.shape)}")
        self.model.check_noise(noise, "noise")
        raw = sample_batched(self.model, noise, course_sampler(self.model, SamplingSettings(method=method, steps=steps, eta=eta)), seed=seed, progress=False)
        return _as_output(to_graded_images(raw), as_pil)


def load_faces(unet: str | Path, device: str = "auto", precision: str = "fp32") -> FaceModel:
    """The course's ``UNet.pt``, a diffusers UNet2DModel folder or a ``faces train`` run, ready to sample."""
    return FaceModel(load_face_model(_path("unet", unet), pick_device(device), precision))


def train_adaptation(source: DomainSource, target: DomainSource, method: str, out: str | Path, seeds: Sequence[int] = (0,),
                     recipe: str = "matched", device: str = "auto", progress: bool = True, resume: bool = False,
                     **settings: Any) -> list[AdaptResult]:
    """Train ``method`` (source, target, dann, cdan, fixmatch) from ``source`` to ``target`` into ``out/seed{S}/``.

    A domain is a source spec (a path in any supported format or an embedded domain's name) or images in
    memory: a :class:`~diffadapt.data.DigitSet` or ``{split: DigitSet}`` (see :func:`digits`). ``settings`` are
    AdaptConfig fields over the recipe's (epochs, batch_size, lr, ...). ``recipe`` is ``matched`` here unless given
    (better than ``report`` on every pair measured, and what the shipped models use), while ``adapt train`` and
    AdaptConfig default to ``report``, the founding report's settings. Returns one result per seed trained;
    ``resume``: keep the seeds this same run already saved in ``out`` (as ``adapt train --resume``).
    """
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray)) or not 1 <= len(seeds) <= MAX_RUN_SEEDS:
        raise InputError(f"seeds must be a sequence of 1 to {MAX_RUN_SEEDS} whole numbers, got {short_repr(seeds)}")
    seeds = [_seed("seeds", seed) for seed in seeds]
    _flag("progress", progress), _flag("resume", resume)
    source, target, out = _domain("source", source), _domain("target", target), _path("out", out)
    config = preset(recipe, method, **settings)
    return train_runs(source, target, config, out, seeds, pick_device(device), progress=progress, report=lambda line: None,
                      resume=resume)


def digits(images: np.ndarray, labels: np.ndarray | None = None, domain: str = "images") -> DigitSet:
    """Images in memory as a domain: (N, H, W) or (N, H, W, 1|3) uint8, labels (N,) in 0..9 (None: unlabelled)."""
    if not isinstance(domain, str) or not DOMAIN_NAME.fullmatch(domain):
        raise InputError(f"domain must be a name of 1 to 64 letters, digits, '_', '-' or '.' (not starting with '.'), got {short_repr(domain)}")
    try:
        images = np.asarray(images)
        labels = None if labels is None else np.asarray(labels)
    except (TypeError, ValueError):  # a ragged list
        raise InputError("images and labels must be arrays (N, H, W[, C]) and (N,) of one shape each") from None
    if images.ndim == 3:
        images = images[:, :, :, None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3) or 0 in images.shape[:3]:
        raise InputError(f"images must be (N, H, W) or (N, H, W, 1|3) uint8, got {images.shape} {images.dtype}")
    if labels is None:
        labels = np.full(len(images), -1)  # unlabelled
    elif labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer) or ((labels < 0) | (labels >= NUM_CLASSES)).any():
        raise InputError(f"labels must be (N,) whole numbers in 0..9, got {labels.shape} {labels.dtype}")
    return DigitSet(np.ascontiguousarray(images), labels.astype(np.int64), domain)


def load_adaptation(run: str | Path | None = None, shipped: str | None = None) -> LoadedRun:
    """A trained adaptation run (its first seed), or ``shipped="usps"`` / ``"svhn"`` for a shipped model."""
    if (run is None) == (shipped is None):
        raise InputError("give a run folder or shipped='usps' / 'svhn', not both")
    return load_run(_path("run", run) if run is not None else shipped_model(shipped))


def predict_labels(run: LoadedRun, images: np.ndarray | DigitSet, normalisation: str = "target", adapt: bool = False,
                   adapt_settings: dict[str, Any] | None = None, device: str = "cpu", progress: bool = False) -> np.ndarray:
    """Labels (N,) for target images (N, H, W[, C]) uint8, prepared as the run prepares its target (size,
    channels, digit box); ``normalisation="folder"`` standardises with the images' own statistics.

    ``adapt=True`` first adapts a copy of the model to these images without labels, as ``adapt predict
    --adapt`` does; ``adapt_settings`` are FolderAdaptConfig fields (method, steps, batch_size, lr, seed)."""
    run, adapt, progress = _run(run), _flag("adapt", adapt), _flag("progress", progress)
    if adapt_settings is not None and (not adapt or not isinstance(adapt_settings, dict)):
        raise InputError("adapt_settings must be a dict of FolderAdaptConfig fields, given with adapt=True")
    data = images if isinstance(images, DigitSet) else digits(images, domain=run.document["target"]["domain"])
    tensors = target_tensors(run, data)
    config = FolderAdaptConfig.from_dict(adapt_settings or {}, section="adapt_settings", ignore_unknown=False) if adapt else None
    result = predict_images(run, tensors, normalisation, config, device=pick_device(device), progress=progress)  # type: ignore[arg-type]
    return result.logits.argmax(1).numpy()


def predict_to_csv(image_dir: str | Path, out_csv: str | Path, run: str | Path | None = None, shipped: str | None = None) -> int:
    """The graded ``image_name,label`` CSV for a folder of images (the ``adapt predict`` command)."""
    if (run is None) == (shipped is None):
        raise InputError("give a run folder or shipped='usps' / 'svhn', not both")
    image_dir, out_csv = _path("image_dir", image_dir), _path("out_csv", out_csv)
    return predict_folder(image_dir, out_csv, _path("run", run) if run is not None else shipped_model(shipped)).rows


def tsne(run: LoadedRun, out: str | Path, per_domain: int = 2000, seed: int = 0,
         domains: tuple[DomainSource, DomainSource] | None = None) -> tuple[Path, Path]:
    """The two t-SNE figures of a run (by class, by domain) into ``out``; ``domains`` for in-memory runs."""
    per_domain, seed = _whole_number("per_domain", per_domain, 0, MAX_TSNE_PER_DOMAIN), _seed("seed", seed)
    if domains is not None and (not isinstance(domains, (tuple, list)) or len(domains) != 2):
        raise InputError("domains must be a (source, target) pair")
    domains = None if domains is None else (_domain("domains[0]", domains[0]), _domain("domains[1]", domains[1]))
    return tsne_figures(_run(run), _path("out", out), per_domain, seed, domains)


__all__ = ["DigitModel", "FaceModel", "digits", "load_adaptation", "load_digits", "load_faces", "predict_labels", "predict_to_csv",
           "train_adaptation", "train_digits", "tsne"]
