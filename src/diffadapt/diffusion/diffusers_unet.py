"""Any unconditional diffusers ``UNet2DModel`` folder, built by diffusers but read by us.

diffusers' own loader (``from_pretrained``) prints its own warnings, initialises a missing weight at random
and builds whatever a config.json declares (``layers_per_block: 100000`` never finishes). Here the config is
read with our strict JSON reader and bounded first, the network is sized on the meta device, the weights
are read with safetensors (or a code-free ``torch.load``) and checked key by key against it, and only then
is the real network built and run once on a small input. Every refusal is an ``InputError`` naming the file.

Folders in our own exact format (``digits export``) are read without diffusers by
``diffusers_format.read_diffusers_folder``; this module is for the rest (the faces commands' ``--unet``).
"""

from __future__ import annotations

import inspect
import types
import warnings
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import torch

from diffadapt.diffusion.diffusers_format import UNET_DIR, find_scheduler_config, read_unet_weights, schedule_from_scheduler_config
from diffadapt.diffusion.schedule import ScheduleConfig
from diffadapt.errors import InputError
from diffadapt.io import CONFIG_FILE, check_weights_fit, read_json
from diffadapt.settings import is_finite_number, is_whole_number

# Bounds on the settings that size the network; the largest public image UNet2DModels (256x256 faces and
# churches) use 2 layers per block, 6 blocks and 512 channels.
MAX_LAYERS_PER_BLOCK = 16
MAX_BLOCKS = 8
MAX_BLOCK_CHANNELS = 4096
IMAGE_CHANNELS = 3  # the faces commands denoise RGB noise files


def unet_config(path: Path) -> tuple[dict[str, Any], Path]:
    """(the checked config.json of an unconditional UNet2DModel, its file), for a UNet folder or a pipeline
    folder holding ``unet/``."""
    config_path = path / CONFIG_FILE if (path / CONFIG_FILE).is_file() else path / UNET_DIR / CONFIG_FILE
    document = read_json(config_path)
    if not isinstance(document, dict):
        raise InputError(f"config.json must be a JSON object, found {type(document).__name__}", config_path)
    if document.get("_class_name") != "UNet2DModel":
        raise InputError(f"_class_name is {document.get('_class_name')!r}; only a diffusers UNet2DModel can be read", config_path)
    from diffusers import UNet2DModel

    parameters = inspect.signature(UNet2DModel.__init__).parameters
    # The settings that size the network first, with their own bounds (before anything is built).
    _check_int(document, "layers_per_block", 1, MAX_LAYERS_PER_BLOCK, config_path)
    channels = document.get("block_out_channels", list(parameters["block_out_channels"].default))
    if not isinstance(channels, list) or not 1 <= len(channels) <= MAX_BLOCKS:
        raise InputError(f"block_out_channels must be a list of 1..{MAX_BLOCKS} channel counts, got {_short(channels)}", config_path)
    for i in range(len(channels)):
        _check_int(channels, i, 1, MAX_BLOCK_CHANNELS, config_path, f"block_out_channels[{i}]")
    for key in ("down_block_types", "up_block_types"):
        names = document.get(key)
        if names is not None and (not isinstance(names, list) or len(names) != len(channels) or not all(isinstance(t, str) for t in names)):
            raise InputError(f"{key} must be a list of {len(channels)} block names (one per block_out_channels), got {_short(names)}", config_path)
    for key, value in document.items():
        if key.startswith("_"):
            continue
        if key not in parameters or key == "self":
            raise InputError(f"unknown UNet2DModel setting {key!r} (a newer diffusers feature?); it may change the network, so it is refused",
                             config_path)
        # diffusers takes "yes" for a bool and -1 for a head size, and fails, or does something else, later.
        if not _fits(value, parameters[key].annotation):
            raise InputError(f"{key} must be {_type_name(parameters[key].annotation)}, got {_short(value)}", config_path)
        for number in _ints(value):
            low = 0 if key in ("freq_shift", "downsample_padding") else 1
            if not low <= number <= MAX_BLOCK_CHANNELS:
                raise InputError(f"{key} must hold integers in {low}..{MAX_BLOCK_CHANNELS}, got {number}", config_path)
    if document.get("num_class_embeds") is not None or document.get("class_embed_type") is not None:
        raise InputError("a class-conditional UNet2DModel (num_class_embeds / class_embed_type set); the faces commands sample unconditional "
                         "models (sample a digit model with `digits generate --ckpt`)", config_path)
    for key in ("in_channels", "out_channels"):
        if key in document and document[key] != IMAGE_CHANNELS:
            raise InputError(f"{key} is {document[key]!r}; the faces commands denoise {IMAGE_CHANNELS}-channel (RGB) images", config_path)
    return document, config_path


def load_unconditional_unet(path: str | Path) -> tuple[torch.nn.Module, ScheduleConfig | None]:
    """(the UNet2DModel of a folder in eval mode, float32 on the CPU; the schedule of its scheduler config,
    None when the folder has none). Calling it: ``module(x, t).sample`` with x (N, 3, H, W) in [-1, 1]."""
    path = Path(path)
    document, config_path = unet_config(path)
    unet_dir = config_path.parent
    from diffusers import UNet2DModel
    from diffusers.utils import logging as diffusers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # our checks say what is wrong in one line; diffusers' notes would only repeat it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with torch.device("meta"):  # sizes only, nothing allocated
                    expected = UNet2DModel.from_config(document).state_dict()
            except Exception as exc:  # noqa: BLE001 - diffusers raises many types for inconsistent settings
                raise InputError(f"diffusers cannot build this UNet2DModel ({type(exc).__name__}: {_short(exc)})", config_path) from None
            weights, weights_path = read_unet_weights(unet_dir, expected)
            check_weights_fit(expected, weights, weights_path)
            module = UNet2DModel.from_config(document)
    finally:
        diffusers_logging.set_verbosity(verbosity)
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()}, strict=True)
    module = module.float().eval().requires_grad_(False)
    side = max(2 ** (len(module.config.block_out_channels) - 1), 8)  # the smallest noise the faces commands take
    try:  # settings that build but cannot run (e.g. a head size that does not divide the channels) fail here, not mid-sampling
        with torch.no_grad():
            module(torch.zeros(1, IMAGE_CHANNELS, side, side), torch.zeros(1, dtype=torch.int64))
    except Exception as exc:  # noqa: BLE001 - diffusers raises many types for inconsistent settings
        raise InputError(f"diffusers cannot run this UNet2DModel ({type(exc).__name__}: {_short(exc)})", config_path) from None
    scheduler_path = find_scheduler_config(unet_dir)
    schedule = schedule_from_scheduler_config(read_json(scheduler_path), scheduler_path) if scheduler_path else None
    return module, schedule


def _fits(value: Any, annotation: Any) -> bool:
    """Whether a JSON value matches a constructor annotation (int | None, tuple[int, ...], bool, ...)."""
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_fits(value, option) for option in get_args(annotation))
    if annotation is type(None):
        return value is None
    if get_origin(annotation) is tuple:
        items = get_args(annotation)
        if not isinstance(value, list):
            return False
        if len(items) == 2 and items[1] is Ellipsis:
            return all(_fits(v, items[0]) for v in value)
        return len(value) == len(items) and all(_fits(v, a) for v, a in zip(value, items))
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return is_whole_number(value)
    if annotation is float:
        return is_finite_number(value)
    if annotation is str:
        return isinstance(value, str)
    return True  # an annotation this check does not know: diffusers' own checks decide


def _type_name(annotation: Any) -> str:
    return str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "").replace("None", "null")


def _ints(value: Any) -> list[int]:
    if is_whole_number(value):
        return [value]
    return [v for v in value if is_whole_number(v)] if isinstance(value, list) else []


def _check_int(container: Any, key: Any, low: int, high: int, source: Path, name: str | None = None) -> None:
    name = name or key
    if isinstance(container, dict) and key not in container:
        return
    value = container[key]
    if not is_whole_number(value) or not low <= value <= high:
        raise InputError(f"{name} must be an integer in {low}..{high}, got {_short(value)}", source)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, Exception) else str(value).splitlines()[0] if str(value) else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."
