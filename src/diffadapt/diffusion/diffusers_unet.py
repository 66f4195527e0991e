"""Any unconditional diffusers ``UNet2DModel`` folder, built by diffusers but read by us.

diffusers' own loader (``from_pretrained``) prints its own warnings, initialises a missing weight at random
and builds whatever a config.json declares (``layers_per_block: 100000`` never finishes). Here the config is
read with our strict JSON reader and bounded first, the network is sized on the meta device, the weights
are read with safetensors (or a code-free ``torch.load``) and checked key by key against it, and only then
is the real network built. Every refusal is an ``InputError`` naming the file.

Folders in our own exact format (``digits export``) are read without diffusers by
``diffusers_format.read_diffusers_folder``; this module is for the rest (the faces commands' ``--unet``).
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import Any

import torch

from diffadapt.diffusion.diffusers_format import UNET_DIR, find_scheduler_config, read_unet_weights, schedule_from_scheduler_config
from diffadapt.diffusion.schedule import ScheduleConfig
from diffadapt.errors import InputError
from diffadapt.io import CONFIG_FILE, check_weights_fit, read_json

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

    accepted = set(inspect.signature(UNet2DModel.__init__).parameters) - {"self"}
    unknown = sorted(k for k in document if not k.startswith("_") and k not in accepted)
    if unknown:
        raise InputError(f"unknown UNet2DModel setting {unknown[0]!r} (a newer diffusers feature?); it may change the network, so it is refused",
                         config_path)
    if document.get("num_class_embeds") is not None or document.get("class_embed_type") is not None:
        raise InputError("a class-conditional UNet2DModel (num_class_embeds / class_embed_type set); the faces commands sample unconditional "
                         "models (sample a digit model with `digits generate --ckpt`)", config_path)
    for key in ("in_channels", "out_channels"):
        if key in document and document[key] != IMAGE_CHANNELS:
            raise InputError(f"{key} is {document[key]!r}; the faces commands denoise {IMAGE_CHANNELS}-channel (RGB) images", config_path)
    _check_int(document, "layers_per_block", 1, MAX_LAYERS_PER_BLOCK, config_path)
    channels = document.get("block_out_channels", [1])
    if not isinstance(channels, list) or not 1 <= len(channels) <= MAX_BLOCKS:
        raise InputError(f"block_out_channels must be a list of 1..{MAX_BLOCKS} channel counts, got {_short(channels)}", config_path)
    for i in range(len(channels)):
        _check_int(channels, i, 1, MAX_BLOCK_CHANNELS, config_path, f"block_out_channels[{i}]")
    for key in ("down_block_types", "up_block_types"):
        types = document.get(key)
        if types is not None and (not isinstance(types, list) or len(types) != len(channels) or not all(isinstance(t, str) for t in types)):
            raise InputError(f"{key} must be a list of {len(channels)} block names (one per block_out_channels), got {_short(types)}", config_path)
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
            weights, weights_path = read_unet_weights(unet_dir)
            check_weights_fit(expected, weights, weights_path)
            module = UNet2DModel.from_config(document)
    finally:
        diffusers_logging.set_verbosity(verbosity)
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in weights.items()}, strict=True)
    scheduler_path = find_scheduler_config(unet_dir)
    schedule = schedule_from_scheduler_config(read_json(scheduler_path), scheduler_path) if scheduler_path else None
    return module.float().eval().requires_grad_(False), schedule


def _check_int(container: Any, key: Any, low: int, high: int, source: Path, name: str | None = None) -> None:
    name = name or key
    if isinstance(container, dict) and key not in container:
        return
    value = container[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{name} must be an integer in {low}..{high}, got {_short(value)}", source)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value) if not isinstance(value, Exception) else str(value).splitlines()[0] if str(value) else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."
