"""Our class-conditional UNet as a diffusers ``UNet2DModel`` folder, and back, exactly.

The format (what ``diffusers.DDPMPipeline.from_pretrained`` and ``UNet2DModel.from_pretrained`` read)::

    FOLDER/model_index.json                          which component is which class
    FOLDER/unet/config.json                          UNet2DModel's constructor arguments
    FOLDER/unet/diffusion_pytorch_model.safetensors  its state dict
    FOLDER/scheduler/scheduler_config.json           a DDPMScheduler: T and the linear betas, epsilon prediction
    FOLDER/diffadapt_sampling.json                   ours only (diffusers ignores it): the sampling defaults

Why the mapping is exact (every module of :class:`~diffadapt.diffusion.unet.ConditionalUNet` has a
diffusers twin computing the same function, checked against diffusers 0.42.1's source):

- time features: ours ``[sin(t w_k), cos(t w_k)]``, ``w_k = 10000^(-k/half)`` is diffusers'
  ``Timesteps(base, flip_sin_to_cos=False, downscale_freq_shift=0)``; the MLP ``time_mlp.0/2`` is
  ``TimestepEmbedding.linear_1/2`` (SiLU between).
- class embedding: ``nn.Embedding(num_classes + 1, 4 base)`` added to the time embedding is diffusers'
  ``class_embedding`` with ``num_class_embeds = num_classes + 1``; the last row is our null class, so
  classifier-free guidance passes ``class_labels = num_classes`` for the unconditional branch.
- ``ResidualBlock`` (norm1-SiLU-conv1, + Linear(SiLU(emb)), norm2-SiLU-dropout-conv2, 1x1 skip when widths
  differ) is ``ResnetBlock2D`` with ``time_embedding_norm="default"`` and ``output_scale_factor=1``
  (names: embed -> time_emb_proj, skip -> conv_shortcut).
- ``SelfAttention`` (GroupNorm, one head of dim C over the H W positions, scale 1/sqrt(C), residual) is
  diffusers' ``Attention`` with ``heads = 1`` (``attention_head_dim: null``, which UNet2DModel turns into
  each block's width): the fused 1x1 ``qkv`` conv (3C, C, 1, 1) splits into the Linear weights
  ``to_q``, ``to_k``, ``to_v`` (C, C) in that order, and the 1x1 ``out`` conv is ``to_out.0``.
- a level is ``DownBlock2D`` / ``AttnDownBlock2D`` (``AttnUpBlock2D`` / ``UpBlock2D`` on the way up, with
  ``layers_per_block + 1`` resnets): the same skips in the same order, stride-2 3x3 conv downsampling
  (``downsample_padding=1``) and nearest x2 + 3x3 conv upsampling; the middle is ``UNetMidBlock2D``.
- GroupNorm: diffusers uses one group count (``norm_num_groups``) everywhere, we halve ``norm_groups``
  until it divides each width; a config is exported only when that gives one count for every norm in the
  network (true of the shipped model: 16 divides 32 ... 256), so both build the same norms. eps is 1e-5.

Refused (an :class:`~diffadapt.errors.InputError`, because UNet2DModel cannot express it exactly):
``patch_size > 1`` (UNet2DModel has no pixel unshuffle before ``conv_in``), GroupNorm counts that differ
between widths, an odd ``base_channels`` (diffusers zero-pads odd time features, ours cannot). On import,
anything outside the mapping above: multi-head attention, scale-shift or spatial time conditioning,
Fourier or learned time features, flipped sin/cos, resnet down/upsamplers, attention on one side only,
``center_input_sample``, other class-embedding types, in/out channel counts that differ, non-linear or
trained betas, v or sample prediction, zero-terminal-SNR rescaling. Unconditional models
(``num_class_embeds: null``) map exactly too.

Everything here is pure: dicts of tensors and JSON documents in, the same out; no diffusers import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffadapt.diffusion.schedule import ScheduleConfig
from diffadapt.diffusion.unet import ConditionalUNet, UNetConfig
from diffadapt.errors import InputError
from diffadapt.io import CONFIG_FILE, load_state_dict_file, load_weights, read_json
from diffadapt.settings import is_whole_number

# The diffusers release whose UNet2DModel source this mapping was checked against (written as
# ``_diffusers_version``; diffusers only reads it to warn about much newer folders).
DIFFUSERS_VERSION = "0.42.1"
UNET_DIR = "unet"
SCHEDULER_DIR = "scheduler"
SCHEDULER_CONFIG = "scheduler_config.json"
MODEL_INDEX = "model_index.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
BIN_WEIGHTS_NAME = "diffusion_pytorch_model.bin"
SAMPLING_FILE = "diffadapt_sampling.json"
NORM_EPS = 1e-5  # torch's GroupNorm default, which ours use

# UNet2DModel's constructor defaults (diffusers 0.42.1): what a key absent from config.json means.
UNET2D_DEFAULTS: dict[str, Any] = {
    "sample_size": None, "in_channels": 3, "out_channels": 3, "center_input_sample": False,
    "time_embedding_type": "positional", "time_embedding_dim": None, "freq_shift": 0, "flip_sin_to_cos": True,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    "mid_block_type": "UNetMidBlock2D", "up_block_types": ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "block_out_channels": [224, 448, 672, 896], "layers_per_block": 2, "mid_block_scale_factor": 1,
    "downsample_padding": 1, "downsample_type": "conv", "upsample_type": "conv", "dropout": 0.0, "act_fn": "silu",
    "attention_head_dim": 8, "norm_num_groups": 32, "attn_norm_num_groups": None, "norm_eps": 1e-5,
    "resnet_time_scale_shift": "default", "add_attention": True, "class_embed_type": None, "num_class_embeds": None,
    "num_train_timesteps": None,
}

# DDPMScheduler's defaults (diffusers 0.42.1) for the keys that decide the noise schedule and the target.
SCHEDULER_DEFAULTS: dict[str, Any] = {
    "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
    "trained_betas": None, "prediction_type": "epsilon", "rescale_betas_zero_snr": False,
}


# --- configs -------------------------------------------------------------------------------------------


def _norm_groups(config: UNetConfig) -> set[int]:
    """The GroupNorm group counts our network actually builds (ours halve per width), from a meta-device
    copy: shapes only, no memory, no initialisation cost."""
    with torch.device("meta"):
        model = ConditionalUNet(config)
    return {m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)}


def _check_representable(config: UNetConfig) -> int:
    """The one GroupNorm group count of ``config``'s network, or InputError when UNet2DModel cannot hold it."""
    if config.patch_size > 1:
        raise InputError(f"patch_size {config.patch_size} cannot be exported: UNet2DModel has no pixel unshuffle before conv_in "
                         "(only patch_size 1 maps exactly)")
    if config.base_channels % 2:
        raise InputError(f"base_channels {config.base_channels} is odd: diffusers pads odd time features with a zero, ours cannot")
    groups = _norm_groups(config)
    if len(groups) != 1:
        raise InputError(f"norm_groups {config.norm_groups} gives GroupNorm counts {sorted(groups)} across the widths; "
                         "UNet2DModel uses one count for every norm, so this model cannot be exported exactly")
    return groups.pop()


def _block_types(config: UNetConfig) -> tuple[list[str], list[str]]:
    levels = range(len(config.channel_mults))
    down = ["AttnDownBlock2D" if level in config.attention_levels else "DownBlock2D" for level in levels]
    # up_blocks[i] is our up[i]: the deepest level first.
    up = ["AttnUpBlock2D" if level in config.attention_levels else "UpBlock2D" for level in reversed(levels)]
    return down, up


def unet_config(config: UNetConfig) -> dict[str, Any]:
    """UNet2DModel's config.json for ``config`` (every constructor argument written, so no diffusers
    default, present or future, decides anything). InputError when it cannot be exact."""
    groups = _check_representable(config)
    down, up = _block_types(config)
    return {
        "_class_name": "UNet2DModel", "_diffusers_version": DIFFUSERS_VERSION,
        "sample_size": config.image_size, "in_channels": config.in_channels, "out_channels": config.in_channels,
        "center_input_sample": False, "time_embedding_type": "positional", "time_embedding_dim": 4 * config.base_channels,
        "freq_shift": 0, "flip_sin_to_cos": False,
        "down_block_types": down, "mid_block_type": "UNetMidBlock2D", "up_block_types": up,
        "block_out_channels": [config.base_channels * m for m in config.channel_mults],
        "layers_per_block": config.num_res_blocks, "mid_block_scale_factor": 1, "downsample_padding": 1,
        "downsample_type": "conv", "upsample_type": "conv", "dropout": config.dropout, "act_fn": "silu",
        "attention_head_dim": None,  # one head per attention block, as wide as the block
        "norm_num_groups": groups, "attn_norm_num_groups": None, "norm_eps": NORM_EPS,
        "resnet_time_scale_shift": "default", "add_attention": True, "class_embed_type": None,
        "num_class_embeds": config.num_classes + 1 if config.num_classes else None,  # + our null class
        "num_train_timesteps": None,
    }


def _int(config: dict[str, Any], key: str, source: Path | str | None, lo: int = 1) -> int:
    value = config.get(key, UNET2D_DEFAULTS[key])
    if not is_whole_number(value) or value < lo:
        raise InputError(f"{key}: expected a whole number >= {lo}, got {value!r}", source)
    return value


def _require(config: dict[str, Any], key: str, allowed: tuple[Any, ...], why: str, source: Path | str | None) -> Any:
    value = config.get(key, UNET2D_DEFAULTS[key])
    try:
        known = value in allowed
    except TypeError:  # an unhashable or oddly comparing JSON value is simply not one of them
        known = False
    if not known:
        shown = " or ".join(repr(a) for a in allowed)
        raise InputError(f"{key} is {value!r}{' (the default)' if key not in config else ''}; only {shown} maps exactly onto our UNet ({why})", source)
    return value


def _string_list(config: dict[str, Any], key: str, source: Path | str | None) -> list[str]:
    value = config.get(key, UNET2D_DEFAULTS[key])
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InputError(f"{key}: expected a non-empty list of block names, got {value!r}", source)
    return value


def config_from_unet_config(config: Any, source: Path | str | None = None) -> UNetConfig:
    """Our UNetConfig from a UNet2DModel config.json document; InputError (naming ``source``) for anything
    that is not a UNet2DModel our ConditionalUNet reproduces exactly."""
    if not isinstance(config, dict):
        raise InputError(f"a UNet config must be a JSON object, found {type(config).__name__}", source)
    name = config.get("_class_name", "UNet2DModel")
    if name != "UNet2DModel":
        raise InputError(f"_class_name is {name!r}; only a diffusers UNet2DModel can be read", source)
    unknown = sorted(k for k in config if not k.startswith("_") and k not in UNET2D_DEFAULTS)
    if unknown:
        raise InputError(f"unknown UNet2DModel setting {unknown[0]!r} (a newer diffusers feature?); it may change the network, so it is refused", source)

    _require(config, "center_input_sample", (False,), "inputs are used as given", source)
    _require(config, "time_embedding_type", ("positional",), "sinusoidal time features", source)
    _require(config, "flip_sin_to_cos", (False,), "features are [sin, cos]", source)
    _require(config, "freq_shift", (0,), "w_k = 10000^(-k/half)", source)
    _require(config, "mid_block_type", ("UNetMidBlock2D",), "resnet, attention, resnet in the middle", source)
    _require(config, "add_attention", (True,), "the middle has attention", source)
    _require(config, "mid_block_scale_factor", (1,), "no output rescaling", source)
    _require(config, "downsample_padding", (1,), "stride-2 3x3 convs with padding 1", source)
    _require(config, "downsample_type", ("conv",), "conv downsampling", source)
    _require(config, "upsample_type", ("conv",), "nearest x2 then a 3x3 conv", source)
    _require(config, "act_fn", ("silu", "swish"), "SiLU everywhere", source)
    _require(config, "norm_eps", (NORM_EPS,), "GroupNorm eps 1e-5", source)
    _require(config, "resnet_time_scale_shift", ("default",), "the embedding is added, not a scale and shift", source)
    _require(config, "class_embed_type", (None,), "a learned class embedding table", source)

    in_channels, out_channels = _int(config, "in_channels", source), _int(config, "out_channels", source)
    if in_channels != out_channels:
        raise InputError(f"in_channels {in_channels} != out_channels {out_channels}: our UNet predicts noise of the image's shape", source)
    size = config.get("sample_size")
    if isinstance(size, list) and len(size) == 2 and size[0] == size[1]:
        size = size[0]  # a square (H, W)
    if not is_whole_number(size) or size < 1:
        raise InputError(f"sample_size: expected the side of the square images, got {size!r}", source)

    widths = config.get("block_out_channels", UNET2D_DEFAULTS["block_out_channels"])
    if not isinstance(widths, list) or not widths or any(not is_whole_number(w) or w < 1 for w in widths):
        raise InputError(f"block_out_channels: expected a list of positive whole numbers, got {widths!r}", source)
    base = widths[0]
    if any(w % base for w in widths):
        raise InputError(f"block_out_channels {widths}: every width must be a multiple of the first (our channel_mults)", source)
    if base % 2:
        raise InputError(f"block_out_channels[0] = {base} is odd: diffusers pads odd time features with a zero, ours cannot", source)
    embed_dim = config.get("time_embedding_dim")
    if embed_dim is not None and embed_dim != 4 * base:
        raise InputError(f"time_embedding_dim {embed_dim!r}: ours is always 4 x block_out_channels[0] = {4 * base}", source)

    down, up = _string_list(config, "down_block_types", source), _string_list(config, "up_block_types", source)
    if not len(down) == len(up) == len(widths):
        raise InputError(f"{len(down)} down blocks, {len(up)} up blocks and {len(widths)} block_out_channels must be as many", source)
    attention_levels = []
    for level, (d, u) in enumerate(zip(down, reversed(up))):
        if d not in ("DownBlock2D", "AttnDownBlock2D") or u not in ("UpBlock2D", "AttnUpBlock2D"):
            raise InputError(f"block types {d!r} / {u!r} at level {level}: only (Attn)DownBlock2D and (Attn)UpBlock2D map onto our UNet", source)
        if d.startswith("Attn") != u.startswith("Attn"):
            raise InputError(f"level {level} has attention on one side only ({d} / {u}); ours has it on both or neither", source)
        if d.startswith("Attn"):
            attention_levels.append(level)

    head_dim = config.get("attention_head_dim", UNET2D_DEFAULTS["attention_head_dim"])
    attended = {widths[level] for level in attention_levels} | {widths[-1]}  # the middle always attends
    if head_dim is not None and any(head_dim != w for w in attended):
        raise InputError(f"attention_head_dim {head_dim!r} splits attention into several heads; ours is one head as wide as the block "
                         f"(widths {sorted(attended)}; write null)", source)
    groups = _int(config, "norm_num_groups", source)
    attn_groups = config.get("attn_norm_num_groups")
    if attn_groups is not None and attn_groups != groups:
        raise InputError(f"attn_norm_num_groups {attn_groups!r} differs from norm_num_groups {groups}; ours uses one count", source)
    num_class_embeds = config.get("num_class_embeds")
    if num_class_embeds is not None and (not is_whole_number(num_class_embeds) or num_class_embeds < 2):
        raise InputError(f"num_class_embeds: expected null or a whole number >= 2 (the classes and the null class), got {num_class_embeds!r}", source)
    dropout = config.get("dropout", 0.0)

    fields = {
        "image_size": size, "in_channels": in_channels, "base_channels": base,
        "channel_mults": [w // base for w in widths], "num_res_blocks": _int(config, "layers_per_block", source),
        "attention_levels": attention_levels,
        # diffusers' last class row is our null class (the convention of our exports).
        "num_classes": num_class_embeds - 1 if num_class_embeds is not None else None,
        "dropout": dropout, "norm_groups": groups, "patch_size": 1,
    }
    try:
        ours = UNetConfig.from_dict(fields, source)
    except InputError as exc:  # named by the file's keys, which the user can see and edit, not by ours
        text = str(exc)
        for field, key in DIFFUSERS_KEYS.items():
            text = text.replace(f": {field}: ", f": {key} (our {field}): ", 1)
        raise InputError(text) from None
    built = _norm_groups(ours)
    if built != {groups}:
        raise InputError(f"norm_num_groups {groups} does not divide every width of this network (ours would build GroupNorm counts "
                         f"{sorted(built)}; diffusers would fail)", source)
    return ours


# UNetConfig fields -> the UNet2DModel config keys they are read from (for errors that name the file's key).
DIFFUSERS_KEYS = {"image_size": "sample_size", "base_channels": "block_out_channels[0]", "channel_mults": "block_out_channels",
                  "num_res_blocks": "layers_per_block", "num_classes": "num_class_embeds - 1", "attention_levels": "down_block_types",
                  "norm_groups": "norm_num_groups"}


def scheduler_config(schedule: ScheduleConfig) -> dict[str, Any]:
    """A DDPMScheduler's scheduler_config.json for our linear schedule and epsilon prediction.

    The sampling-only keys take DDPMScheduler's defaults, stated so no other default decides them;
    ``clip_sample`` (x0 clipped to [-1, 1]) is what a digit checkpoint samples with unless its sampling section
    says otherwise (``models.DIGIT_SAMPLING_FALLBACK``); ``SamplerConfig`` itself does not clip unless told.
    """
    return {
        "_class_name": "DDPMScheduler", "_diffusers_version": DIFFUSERS_VERSION,
        "num_train_timesteps": schedule.num_timesteps, "beta_start": schedule.beta_start, "beta_end": schedule.beta_end,
        "beta_schedule": "linear", "trained_betas": None, "variance_type": "fixed_small", "clip_sample": True,
        "clip_sample_range": 1.0, "prediction_type": "epsilon", "thresholding": False, "dynamic_thresholding_ratio": 0.995,
        "sample_max_value": 1.0, "timestep_spacing": "leading", "steps_offset": 0, "rescale_betas_zero_snr": False,
    }


def schedule_from_scheduler_config(config: Any, source: Path | str | None = None) -> ScheduleConfig:
    """Our ScheduleConfig from a diffusers scheduler_config.json (DDPM, DDIM and the other schedulers share
    these keys). Only what fixes the forward process and the network's target is read: T, a linear beta
    range and epsilon prediction; anything else is refused with InputError naming ``source``."""
    if not isinstance(config, dict):
        raise InputError(f"a scheduler config must be a JSON object, found {type(config).__name__}", source)

    def get(key: str) -> Any:
        return config.get(key, SCHEDULER_DEFAULTS[key])

    if get("beta_schedule") != "linear":
        raise InputError(f"beta_schedule is {get('beta_schedule')!r}; only 'linear' betas are supported (ours are linear)", source)
    if get("trained_betas") is not None:
        raise InputError("trained_betas are given; only a linear beta_start .. beta_end schedule is supported", source)
    if get("prediction_type") != "epsilon":
        raise InputError(f"prediction_type is {get('prediction_type')!r}; only 'epsilon' (noise-predicting) models are supported", source)
    if get("rescale_betas_zero_snr") is not False:
        raise InputError("rescale_betas_zero_snr changes the betas; only the plain linear schedule is supported", source)
    try:
        return ScheduleConfig.from_dict(
            {"num_timesteps": get("num_train_timesteps"), "beta_start": get("beta_start"), "beta_end": get("beta_end")}, source)
    except InputError as exc:  # name the file's key, not ours
        raise InputError(str(exc).replace("num_timesteps:", "num_train_timesteps:")) from None


# --- weights -------------------------------------------------------------------------------------------

# How one of our parameters becomes diffusers' (and back):
#   "copy"  same tensor;  "linear"  a 1x1 conv (O, I, 1, 1) is a Linear (O, I);
#   "qkv"   the fused (3C, C, 1, 1) conv / (3C,) bias is three Linear (C, C) / (C,): q, k, v.
_RESNET = {"norm1": "norm1", "conv1": "conv1", "embed": "time_emb_proj", "norm2": "norm2", "conv2": "conv2", "skip": "conv_shortcut"}
_TOP = {"time_mlp.0": "time_embedding.linear_1", "time_mlp.2": "time_embedding.linear_2", "class_embedding": "class_embedding",
        "conv_in": "conv_in", "norm_out": "conv_norm_out", "conv_out": "conv_out",
        "mid_block1": "mid_block.resnets.0", "mid_block2": "mid_block.resnets.1"}


def _attention(prefix: str, rest: str) -> tuple[str, list[str]]:
    module, param = rest.split(".", 1)
    if module == "norm":
        return "copy", [f"{prefix}.group_norm.{param}"]
    if module == "qkv":
        return "qkv", [f"{prefix}.to_{x}.{param}" for x in "qkv"]
    if module == "out":
        return "linear", [f"{prefix}.to_out.0.{param}"]
    raise ValueError(rest)


def _diffusers_names(key: str) -> tuple[str, list[str]]:
    """(how, diffusers keys) for one of our state-dict keys."""
    if match := re.fullmatch(r"(down|up)\.(\d+)\.blocks\.(\d+)\.(\w+)\.(\w+)", key):
        side, level, index, module, param = match.groups()
        return "copy", [f"{side}_blocks.{level}.resnets.{index}.{_RESNET[module]}.{param}"]
    if match := re.fullmatch(r"(down|up)\.(\d+)\.attentions\.(\d+)\.(.+)", key):
        side, level, index, rest = match.groups()
        return _attention(f"{side}_blocks.{level}.attentions.{index}", rest)
    if match := re.fullmatch(r"(down|up)sample\.(\d+)\.(\w+)", key):
        side, level, param = match.groups()
        return "copy", [f"{side}_blocks.{level}.{side}samplers.0.conv.{param}"]
    if key.startswith("mid_attention."):
        return _attention("mid_block.attentions.0", key[len("mid_attention."):])
    for ours, theirs in _TOP.items():
        if key.startswith(ours + "."):
            rest = key[len(ours) + 1:]
            if ours.startswith("mid_block"):
                module, param = rest.split(".", 1)
                return "copy", [f"{theirs}.{_RESNET[module]}.{param}"]
            return "copy", [f"{theirs}.{rest}"]
    raise ValueError(f"no diffusers name for {key}")


@dataclass(frozen=True)
class _Entry:
    ours: str
    how: str
    theirs: tuple[str, ...]
    shape: tuple[int, ...]  # ours

    def their_shapes(self) -> Iterator[tuple[str, tuple[int, ...]]]:
        if self.how == "copy":
            yield self.theirs[0], self.shape
        elif self.how == "linear":
            yield self.theirs[0], self.shape[:2]
        else:
            channels = self.shape[0] // 3
            for name in self.theirs:
                yield name, (channels, *self.shape[1:2])


def _entries(config: UNetConfig) -> list[_Entry]:
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in ConditionalUNet(config).state_dict().items()}
    entries = []
    for key, shape in shapes.items():
        how, theirs = _diffusers_names(key)
        entries.append(_Entry(key, "copy" if how == "linear" and len(shape) == 1 else how, tuple(theirs), shape))
    return entries


def _check_keys(expected: dict[str, tuple[int, ...]], state: dict[str, Any], source: Path | str | None, what: str) -> None:
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
    if not parts:
        not_tensor = [k for k in expected if not isinstance(state[k], torch.Tensor) or not state[k].is_floating_point()]
        if not_tensor:
            parts.append(f"{not_tensor[0]} is not a floating-point tensor")
        else:
            wrong = [k for k in expected if tuple(state[k].shape) != expected[k]]
            if wrong:
                k = wrong[0]
                parts.append(f"{len(wrong)} keys of the wrong shape (e.g. {k}: {tuple(state[k].shape)} vs {expected[k]})")
    if parts:
        raise InputError(f"{what} do not fit the config: " + "; ".join(parts), source)


def to_diffusers(model_config: UNetConfig, state: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(UNet2DModel config.json document, UNet2DModel state dict) for our ConditionalUNet's config and state
    dict. Tensors keep their dtype and values (reshapes and splits only). InputError when the model
    cannot be represented exactly (see the module docstring) or ``state`` does not fit ``model_config``."""
    document = unet_config(model_config)
    entries = _entries(model_config)
    _check_keys({e.ours: e.shape for e in entries}, state, None, "weights")
    out: dict[str, torch.Tensor] = {}
    for e in entries:
        tensor = state[e.ours].detach()
        if e.how == "copy":
            out[e.theirs[0]] = tensor
        elif e.how == "linear":
            out[e.theirs[0]] = tensor.reshape(e.shape[:2])
        else:  # rows 0..C-1 of the fused conv are q, C..2C-1 k, 2C..3C-1 v (SelfAttention's reshape(b, 3, c, hw))
            parts = tensor.reshape(3, e.shape[0] // 3, *e.shape[1:2]).unbind(0)
            out.update(zip(e.theirs, parts))
    return document, {k: v.contiguous() for k, v in out.items()}


def from_diffusers(unet_config_dict: Any, state: dict[str, torch.Tensor], source: Path | str | None = None) -> tuple[UNetConfig, dict[str, torch.Tensor]]:
    """(our UNetConfig, our state dict in float32) from a UNet2DModel config.json document and state dict;
    the inverse of :func:`to_diffusers`. InputError naming ``source`` for a config outside the exact
    mapping, missing or unexpected keys, wrong shapes."""
    config = config_from_unet_config(unet_config_dict, source)
    entries = _entries(config)
    expected = {name: shape for e in entries for name, shape in e.their_shapes()}
    if not isinstance(state, dict):
        raise InputError("weights must be a dict of tensors", source)
    _check_keys(expected, state, source, "weights")
    ours: dict[str, torch.Tensor] = {}
    for e in entries:
        tensors = [state[name].float() for name in e.theirs]  # float16 -> float32 is exact
        ours[e.ours] = tensors[0].reshape(e.shape) if e.how != "qkv" else torch.cat(tensors).reshape(e.shape)
    return config, ours


# --- folders -------------------------------------------------------------------------------------------


def is_diffusers_folder(path: str | Path) -> bool:
    """A diffusers pipeline folder (``unet/config.json``, usually with ``model_index.json``) or a UNet folder
    itself (``config.json`` whose ``_class_name`` is ``UNet2DModel``). Never raises: an unreadable
    config.json is simply not one (the caller's own reader reports it)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / UNET_DIR / CONFIG_FILE).is_file():
        return True
    if not (path / CONFIG_FILE).is_file():
        return False
    try:
        document = read_json(path / CONFIG_FILE)
    except InputError:
        return False
    return isinstance(document, dict) and document.get("_class_name") == "UNet2DModel"


@dataclass
class DiffusersFolder:
    """What :func:`read_diffusers_folder` found: our model and schedule configs, our state dict, and the
    raw sampling defaults (None when the folder has no diffadapt_sampling.json)."""

    model_config: UNetConfig
    state: dict[str, torch.Tensor]
    schedule: ScheduleConfig
    sampling: dict[str, Any] | None
    unet_dir: Path
    sampling_source: Path


def read_unet_weights(unet_dir: Path, expected: dict[str, torch.Tensor] | None = None) -> tuple[dict[str, torch.Tensor], Path]:
    """(the state dict, its file) of a UNet folder: ``diffusion_pytorch_model.safetensors``, or the ``.bin``
    loaded with weights_only (it runs no code); each tensor checked (dtype, finite). ``expected``: the
    UNet2DModel state dict the config declares (meta tensors), checked against a safetensors header first."""
    if (unet_dir / WEIGHTS_NAME).is_file():
        return load_weights(unet_dir / WEIGHTS_NAME, expected)[0], unet_dir / WEIGHTS_NAME
    if (unet_dir / BIN_WEIGHTS_NAME).is_file():
        return load_state_dict_file(unet_dir / BIN_WEIGHTS_NAME, "diffusers weights"), unet_dir / BIN_WEIGHTS_NAME
    sharded = any(unet_dir.glob("*.index.json"))
    raise InputError(f"no {WEIGHTS_NAME} here{' (sharded weights are not supported)' if sharded else ''}", unet_dir)


def find_scheduler_config(unet_dir: Path) -> Path | None:
    """A pipeline's ``scheduler/scheduler_config.json`` beside the UNet folder, else one inside it, else None."""
    return next((c for c in (unet_dir.parent / SCHEDULER_DIR / SCHEDULER_CONFIG, unet_dir / SCHEDULER_CONFIG) if c.is_file()), None)


def read_diffusers_folder(path: str | Path) -> DiffusersFolder:
    """Read a pipeline folder (``FOLDER/unet``, ``FOLDER/scheduler``) or a UNet folder (its schedule from
    ``../scheduler/scheduler_config.json`` or a ``scheduler_config.json`` inside it). Weights:
    ``diffusion_pytorch_model.safetensors`` (or ``.bin``, loaded with weights_only, so it runs no code)."""
    path = Path(path)
    unet_dir = path / UNET_DIR if (path / UNET_DIR / CONFIG_FILE).is_file() else path
    root = path if unet_dir != path else path.parent
    config_path = unet_dir / CONFIG_FILE
    document = read_json(config_path)
    declared = config_from_unet_config(document, config_path)  # a config error names config.json, before the weights are read
    with torch.device("meta"):
        _, expected = to_diffusers(declared, ConditionalUNet(declared).state_dict())
    state, weights_path = read_unet_weights(unet_dir, expected)
    config, ours = from_diffusers(document, state, weights_path)

    scheduler_path = find_scheduler_config(unet_dir)
    if scheduler_path is None:
        raise InputError(f"no scheduler config: expected {root / SCHEDULER_DIR / SCHEDULER_CONFIG} (the noise schedule the model was trained "
                         "with)", path)
    schedule = schedule_from_scheduler_config(read_json(scheduler_path), scheduler_path)

    sampling_path = root / SAMPLING_FILE
    sampling = None
    if sampling_path.is_file():
        sampling = read_json(sampling_path)
        if not isinstance(sampling, dict):
            raise InputError(f"sampling defaults must be a JSON object, found {type(sampling).__name__}", sampling_path)
    return DiffusersFolder(config, ours, schedule, sampling, unet_dir, sampling_path)
