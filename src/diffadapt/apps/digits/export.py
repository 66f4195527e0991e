"""Write a digit checkpoint as a diffusers pipeline folder that ``UNet2DModel.from_pretrained`` loads.

The folder (see :mod:`diffadapt.diffusion.diffusers_format` for why the mapping is exact)::

    OUT/model_index.json                            DDPMPipeline: unet = UNet2DModel, scheduler = DDPMScheduler
    OUT/unet/config.json                            UNet2DModel with num_class_embeds = classes + 1 (the null class)
    OUT/unet/diffusion_pytorch_model.safetensors
    OUT/scheduler/scheduler_config.json             the linear schedule, epsilon prediction
    OUT/diffadapt_sampling.json                     the checkpoint's sampling defaults (method, steps, guidance ...)

``diffadapt digits sample --ckpt OUT`` reads it back into our own UNet (no diffusers needed) and samples
it exactly as the checkpoint it came from, with the same defaults. DDPMPipeline recognises the folder
but cannot run it (its ``__call__`` passes no class labels): drive UNet2DModel and a scheduler directly,
passing ``class_labels`` (the README shows the loop with classifier-free guidance).
"""

from __future__ import annotations

from pathlib import Path

import torch

from diffadapt.diffusion import diffusers_format as fmt
from diffadapt.diffusion.checkpoint import DIGITS_KIND, load_checkpoint
from diffadapt.diffusion.models import checkpoint_sampling, default_digits_checkpoint
from diffadapt.diffusion.schedule import ScheduleConfig
from diffadapt.diffusion.unet import UNetConfig
from diffadapt.errors import InputError
from diffadapt.io import CONFIG_FILE, atomic_dir, check_not_an_input, save_weights, write_json_atomic


def storage_dtype(state: dict[str, torch.Tensor]) -> torch.dtype:
    """float16 when every value survives the round trip float32 -> float16 -> float32 bit for bit (the
    shipped checkpoint is stored in float16), else float32: half the file, not one value changed.
    ``from_pretrained`` builds float32 parameters either way."""
    lossless = all(torch.equal(v.half().float(), v.float()) for v in state.values() if v.is_floating_point())
    return torch.float16 if lossless else torch.float32


def export_diffusers(ckpt: str | Path | None, out: str | Path, overwrite: bool = False) -> Path:
    """Write the digit checkpoint ``ckpt`` (a run folder or its model.safetensors; None: the shipped one)
    as the diffusers folder ``out``, atomically (all of it or nothing). Returns ``out``.

    InputError when the checkpoint is not a conditional digit model, is damaged, or cannot be represented
    exactly by UNet2DModel (patch_size > 1, mixed GroupNorm counts; see diffusers_format), and when ``out``
    is a non-empty folder without ``overwrite``.
    """
    path = Path(ckpt) if ckpt is not None else default_digits_checkpoint()
    check_not_an_input(out, [path], "the output folder", may_lie_inside=True)  # --overwrite would delete the checkpoint with the folder
    config, weights = load_checkpoint(path, DIGITS_KIND)
    source = (path if path.is_dir() else path.parent) / CONFIG_FILE
    for section in ("model", "schedule"):
        if section not in config:
            raise InputError(f"config has no {section!r} section", source)
    model_config = UNetConfig.from_dict(config["model"], source, "model")
    schedule = ScheduleConfig.from_dict(config["schedule"], source, "schedule")
    sampling = config.get("sampling", {})
    defaults = checkpoint_sampling(sampling, source)
    try:
        unet_document, state = fmt.to_diffusers(model_config, weights)
    except InputError as exc:
        raise InputError(f"cannot export this model exactly: {exc}", source) from None
    dtype = storage_dtype(state)

    # Read it back before writing anything: the folder must load into the very same network.
    back_config, back = fmt.from_diffusers(unet_document, {k: v.to(dtype) for k, v in state.items()}, "export")
    if {**back_config.to_dict(), "norm_groups": 0} != {**model_config.to_dict(), "norm_groups": 0} or any(
            not torch.equal(back[k], weights[k].float()) for k in weights):
        raise RuntimeError("diffusers export does not read back to the same model (a bug in diffusers_format)")

    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        write_json_atomic(tmp / fmt.MODEL_INDEX, {
            "_class_name": "DDPMPipeline", "_diffusers_version": fmt.DIFFUSERS_VERSION,
            "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"],
        })
        (tmp / fmt.UNET_DIR).mkdir()
        write_json_atomic(tmp / fmt.UNET_DIR / CONFIG_FILE, unet_document)
        # "format": "pt" is what diffusers itself writes; the rest says where the weights came from.
        metadata = {"format": "pt", "diffadapt_kind": DIGITS_KIND, "diffadapt_step": str(config.get("step", 0))}
        save_weights(tmp / fmt.UNET_DIR / fmt.WEIGHTS_NAME, state, metadata, dtype)
        (tmp / fmt.SCHEDULER_DIR).mkdir()
        write_json_atomic(tmp / fmt.SCHEDULER_DIR / fmt.SCHEDULER_CONFIG, fmt.scheduler_config(schedule))
        # The checkpoint's own section (with notes such as chosen_by), every field filled in.
        write_json_atomic(tmp / fmt.SAMPLING_FILE, {**sampling, **defaults.to_dict()})
    return out
