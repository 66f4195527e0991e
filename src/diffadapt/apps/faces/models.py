"""DDIM on face models: the course's UNet, a diffusers UNet2DModel folder, or our own unconditional run.

The graded setting (``course_face_unet/README.md``): betas = linspace(1e-4, 2e-2, 1000), 50 uniform DDIM
steps (t = 980, 960, ..., 0), no x0 clipping, each result min-max normalised over the whole image and
rounded to 8 bits, MSE against GT on 0..255 values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffadapt.data.formats.checks import require_inside, resolved
from diffadapt.data.imageio import read_image
from diffadapt.device import resolve_precision
from diffadapt.diffusion.checkpoint import FACES_KIND
from diffadapt.diffusion.course_unet import COURSE_IMAGE_SIZE, MULTIPLIERS, load_course_unet
from diffadapt.diffusion.diffusers_format import UNET_DIR
from diffadapt.diffusion.diffusers_unet import load_unconditional_unet
from diffadapt.diffusion.models import DIGIT_FIGURE_SPACING, DIGIT_FIGURE_STEPS, LoadedModel, load_model
from diffadapt.diffusion.noise_model import NoiseModel
from diffadapt.diffusion.sampler import SamplerConfig, initial_noise
from diffadapt.diffusion.sampling import SamplingSettings
from diffadapt.diffusion.schedule import LinearSchedule, ScheduleConfig
from diffadapt.errors import InputError
from diffadapt.images import minmax_to_uint8, model_to_nhwc, nchw_to_nhwc
from diffadapt.io import CONFIG_FILE, read_run_config, require_file, safe_torch_load

COURSE_SCHEDULE = ScheduleConfig(num_timesteps=1000, beta_start=1e-4, beta_end=0.02)
MAX_NOISE_SIDE = 1024
MAX_NOISE_FILE_BYTES = 3 * MAX_NOISE_SIDE**2 * 8 + (1 << 20)  # the largest noise allowed, in float64, and the file's own records
MAX_NOISE_STEM_BYTES = 200
MAX_NOISE_VALUE = 100.0  # |z| > 100 has probability ~0 for any N(0, 1) sample: such a file is not noise


def load_face_model(path: str | Path, device: torch.device | str = "cpu", precision: str = "fp32") -> NoiseModel:
    """The course's ``UNet.pt``, a diffusers UNet2DModel folder (config.json + weights, or a pipeline folder
    holding ``unet/``; read by ``diffusion/diffusers_unet.py``) or a ``faces train`` run."""
    path = Path(path)
    device = torch.device(device)
    bf16 = resolve_precision(precision, device) if precision != "fp32" else False
    if not path.exists():
        raise InputError("UNet not found", path)
    if path.is_file():
        module = load_course_unet(path).to(device)
        if device.type == "cuda":
            module = module.to(memory_format=torch.channels_last)
        return NoiseModel(lambda labels: module, LinearSchedule(COURSE_SCHEDULE), "course UNet", module,
                          device, bf16, size_multiple=2 ** (len(MULTIPLIERS) - 1), trained_size=COURSE_IMAGE_SIZE, source=path)
    if not (path / CONFIG_FILE).is_file():
        if (path / UNET_DIR / CONFIG_FILE).is_file():  # a diffusers pipeline folder
            return _load_diffusers(path, device, bf16)
        raise InputError("a model folder needs config.json (diffusers UNet2DModel or a diffadapt faces run)", path)
    config = read_run_config(path)
    if config.get("kind") == FACES_KIND:
        loaded = load_model(path, kind=FACES_KIND, device=device, precision="bf16" if bf16 else "fp32")
        module = loaded.model
        cfg = loaded.model_config
        return NoiseModel(lambda labels: lambda x, t: module(x, t, None), loaded.schedule, "diffadapt faces run", module, device, bf16,
                          size_multiple=cfg.patch_size * 2 ** (len(cfg.channel_mults) - 1), trained_size=cfg.image_size, source=path)
    if config.get("_class_name") == "UNet2DModel":
        return _load_diffusers(path, device, bf16)
    raise InputError(f"config.json describes neither a diffusers UNet2DModel nor a diffadapt faces run (kind {config.get('kind')!r}, "
                     f"_class_name {config.get('_class_name')!r})", path / CONFIG_FILE)


def _load_diffusers(path: Path, device: torch.device, bf16: bool) -> NoiseModel:
    try:
        import diffusers  # noqa: F401 - only to know it is there
    except ImportError:
        raise InputError("diffusers model folders need the diffusers package: pip install diffusers", path) from None
    module, schedule = load_unconditional_unet(path)
    module = module.to(device)
    halvings = len(module.config.block_out_channels) - 1  # the last block does not downsample
    sample_size = module.config.sample_size  # an int, a pair or None
    trained = max(sample_size) if isinstance(sample_size, (list, tuple)) and sample_size else sample_size
    return NoiseModel(lambda labels: lambda x, t: module(x, t).sample, LinearSchedule(schedule or COURSE_SCHEDULE),
                      "diffusers UNet2DModel", module, device, bf16, size_multiple=2 ** halvings,
                      trained_size=trained if isinstance(trained, int) and trained > 0 else None, source=path)


def load_noise(path: str | Path) -> torch.Tensor:
    """A noise file: a tensor of shape (1, 3, H, W) or (3, H, W), loaded without running code -> (1, 3, H, W)."""

    path = Path(path)
    noise = safe_torch_load(path, "noise file", MAX_NOISE_FILE_BYTES)
    if not isinstance(noise, torch.Tensor):
        raise InputError(f"expected a tensor, found a {type(noise).__name__}", path)
    if noise.layout != torch.strided or noise.is_meta or noise.dtype not in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        raise InputError(f"noise must be a dense float16, bfloat16, float32 or float64 tensor, got {noise.dtype} ({noise.layout})", path)
    if noise.ndim == 3:
        noise = noise[None]
    if noise.ndim != 4 or noise.shape[0] != 1 or noise.shape[1] != 3:
        raise InputError(f"noise must be a float tensor of shape (1, 3, H, W) or (3, H, W), got {tuple(noise.shape)} {noise.dtype}", path)
    if not 8 <= min(noise.shape[-2:]) <= max(noise.shape[-2:]) <= MAX_NOISE_SIDE:
        raise InputError(f"noise of size {noise.shape[-2]}x{noise.shape[-1]}: sides must be in 8..{MAX_NOISE_SIDE}", path)
    if not bool(torch.isfinite(noise).all()):
        raise InputError("noise holds NaN or infinite values", path)
    largest = float(noise.abs().max())
    if largest > MAX_NOISE_VALUE:
        raise InputError(f"noise values reach {largest:.3g}; standard Gaussian noise stays within +-{MAX_NOISE_VALUE:g}", path)
    return noise.to(torch.float32, copy=True)  # a copy: a view would keep the file's whole storage alive


def load_noise_dir(folder: str | Path) -> tuple[list[str], torch.Tensor]:
    """All ``*.pt`` noise files of a folder, sorted: (stems, (N, 3, H, W))."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("noise folder not found", folder)
    paths = sorted(folder.glob("*.pt"))
    if not paths:
        raise InputError("noise folder holds no .pt files", folder)
    root = resolved(folder)
    for path in paths:
        require_inside(path, folder, root)
        try:
            path.name.encode("utf-8")
        except UnicodeEncodeError:  # written as STEM.png, and no page or CSV can hold lone surrogates
            raise InputError(f"file name {ascii(path.name)} is not valid UTF-8; rename the file", folder) from None
        if len(path.stem.encode("utf-8", "surrogateescape")) > MAX_NOISE_STEM_BYTES:
            # Each image is written as STEM.png beside a temporary suffix; file names stop at 255 bytes.
            raise InputError(f"noise file names must be at most {MAX_NOISE_STEM_BYTES} bytes before .pt", path)
    tensors = [load_noise(p) for p in paths]
    for p, tensor in zip(paths, tensors):
        if tensor.shape != tensors[0].shape:
            raise InputError(f"noise shape {tuple(tensor.shape)} differs from {paths[0].name}'s {tuple(tensors[0].shape)}", p)
    return [p.stem for p in paths], torch.cat(tensors)


def course_sampler(model: NoiseModel, given: SamplingSettings | None = None) -> SamplerConfig:
    """``given`` over the graded setting: SamplerConfig's defaults with ``leading`` timesteps (diffusers'
    ``timestep_spacing="leading"``) and the model's own x0 clipping convention (none for the course's UNet)."""
    graded = SamplingSettings(spacing="leading", clip_x0=model.clip_x0)
    return (given if given is not None else SamplingSettings()).over(graded).sampler_config(model.schedule)


def to_graded_images(x: torch.Tensor) -> np.ndarray:
    """The course's saving rule: per-image min-max to [0, 1], round(x * 255) -> (N, H, W, 3) uint8."""
    return nchw_to_nhwc(minmax_to_uint8(x))


def ground_truth_paths(folder: str | Path, names: list[str]) -> list[Path]:
    """``folder/NAME.png`` for each noise name: each must be there and lie inside the folder (no link out)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("ground-truth folder not found", folder)
    root = resolved(folder)
    paths = [folder / f"{name}.png" for name in names]
    for path in paths:
        require_file(path, "a ground-truth image", "ground-truth image for a noise file is missing")
        require_inside(path, folder, root)
    return paths


def mse_against(images: np.ndarray, gt_paths: list[Path]) -> list[float]:
    """Per-image MSE on 0..255 values between uint8 (N, H, W, 3) images and GT PNG files."""

    errors = []
    for image, path in zip(images, gt_paths):
        gt = read_image(path)
        if gt.shape[2] == 1:
            gt = np.repeat(gt, 3, axis=2)
        if gt.shape != image.shape:
            raise InputError(f"ground truth is {gt.shape[1]}x{gt.shape[0]}, output is {image.shape[1]}x{image.shape[0]}", path)
        errors.append(float(np.mean((image.astype(np.float64) - gt.astype(np.float64)) ** 2)))
    return errors


@dataclass
class FigureInputs:
    """What a DDIM figure samples: the model, its noises (N, C, H, W) and column names, the rule that turns
    samples into uint8 images, and the steps and timestep spacing to use."""

    model: NoiseModel
    noises: torch.Tensor
    names: list[str]
    to_images: Callable[[torch.Tensor], np.ndarray]
    steps: int
    spacing: str


def digit_figure_inputs(loaded: LoadedModel, digit: int, count: int, seed: int, guidance: float | None = None,
                        steps: int | None = None) -> FigureInputs:
    """A digit checkpoint as a figure's model: class ``digit``, the checkpoint's guidance (or ``guidance``),
    ``count`` noises from ``seed``, the digit figures' steps and spacing (or ``steps``)."""
    cfg = loaded.model_config
    model = loaded.noise_model(loaded.guidance(guidance), digit)
    noises = initial_noise(count, (cfg.in_channels, cfg.image_size, cfg.image_size), seed)
    return FigureInputs(model, noises, [f"z{i}" for i in range(count)], model_to_nhwc,
                        DIGIT_FIGURE_STEPS if steps is None else steps, DIGIT_FIGURE_SPACING)


def face_figure_inputs(unet: str | Path, noise_dir: str | Path, count: int, device: torch.device, precision: str,
                       steps: int | None = None) -> FigureInputs:
    """A face UNet and the first ``count`` noise files of a folder, with the graded steps and spacing."""
    model = load_face_model(unet, device, precision)
    names, noises = load_noise_dir(noise_dir)
    if len(noises) < count:
        raise InputError(f"needs {count} noise files, found {len(noises)}", noise_dir)
    model.check_noise(noises, noise_dir)
    sampler = course_sampler(model, SamplingSettings(steps=steps))
    return FigureInputs(model, noises[:count], names[:count], to_graded_images, sampler.steps, sampler.spacing)
