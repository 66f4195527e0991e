"""Diffusion run folders: safetensors weights beside a JSON config, written atomically.

A run folder holds
    config.json         what the model is (model, schedule, data, sampling defaults) and the training step
    model.safetensors   the EMA weights used for sampling (metadata: kind and step)
    state.pt            what --resume needs: raw weights, optimizer, RNG states (tensors only, loaded with
                        torch.load(weights_only=True), so it cannot run code)
    metrics.csv         the training curve (see diffusion/train.py), with curves.png beside it
Every file is written to a temporary name and renamed; config.json is written last, so a run folder that
has one is complete up to the step it names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from diffadapt.diffusion.unet import ConditionalUNet, UNetConfig
from diffadapt.errors import InputError
from diffadapt.io import (
    CONFIG_FILE,
    atomic_path,
    load_weights,
    read_run_config,
    run_folder,
    safe_torch_load,
    save_weights,
    write_text_atomic,
)
from diffadapt.settings import short_repr

WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.pt"
DIGITS_KIND = "diffadapt/conditional-ddpm"
FACES_KIND = "diffadapt/unconditional-ddpm"


def save_checkpoint(
    run_dir: Path,
    config: dict[str, Any],
    ema_state: dict[str, torch.Tensor],
    resume_state: dict[str, Any] | None,
    weights_dtype: torch.dtype | None = None,
) -> None:
    """Write weights, resume state, then config.json (the commit point)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    metadata = {"kind": config["kind"], "step": str(config.get("step", 0))}
    save_weights(run_dir / WEIGHTS_FILE, ema_state, metadata, weights_dtype)
    if resume_state is not None:
        with atomic_path(run_dir / STATE_FILE) as tmp, open(tmp, "wb") as handle:
            torch.save(resume_state, handle)  # a file object: the archive's inner folder is "archive", not the temporary's random name
    write_text_atomic(run_dir / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=False) + "\n")


def load_checkpoint(path: str | Path, expected_kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, EMA weights in float32) of a run folder (or its model.safetensors), checking it is the
    expected model."""
    path = Path(path)
    run_dir = run_folder(path, (CONFIG_FILE, WEIGHTS_FILE, STATE_FILE), "a run folder (config.json + model.safetensors)")
    if not run_dir.exists():
        raise InputError("checkpoint not found", path)
    config = read_run_config(run_dir)
    kind = config.get("kind")
    if kind != expected_kind:
        raise InputError(f"checkpoint's kind is {short_repr(kind)}, expected {expected_kind!r}", run_dir / CONFIG_FILE)
    weights, metadata = load_weights(run_dir / WEIGHTS_FILE, expected_weights(config, run_dir / CONFIG_FILE))
    if metadata.get("kind", kind) != kind:
        raise InputError(f"weights are of a {metadata.get('kind')} model but config says {kind}", run_dir / WEIGHTS_FILE)
    return config, {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}


def expected_weights(config: dict[str, Any], source: Path) -> dict[str, torch.Tensor] | None:
    """The state dict (on the meta device: shapes only) of the network a run's ``model`` section declares, so
    that weights of another shape are refused from the file's header; None without a ``model`` object (the
    callers name that)."""
    if not isinstance(config.get("model"), dict):
        return None
    model_config = UNetConfig.from_dict(config["model"], source, "model")
    with torch.device("meta"):
        return ConditionalUNet(model_config).state_dict()


def load_resume_state(run_dir: Path) -> dict[str, Any]:
    if not (run_dir / STATE_FILE).is_file():
        raise InputError("--resume needs state.pt from an earlier run here", run_dir)
    return safe_torch_load(run_dir / STATE_FILE, "resume state")
