"""Diffusion checkpoints: safetensors weights beside a JSON config, written atomically.

A run folder holds
    config.json         what the model is (model, schedule, data, sampling defaults) and the training step
    model.safetensors   the EMA weights used for sampling (metadata: kind and step)
    state.pt            what --resume needs: raw weights, optimizer, RNG states (tensors only, loaded with
                        torch.load(weights_only=True), so it cannot run code)
Every file is written to a temporary name and renamed; config.json is written last, so a run folder that
has one is complete up to the step it names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from diffadapt.errors import InputError
from diffadapt.viz.atomic import atomic_path, write_text_atomic

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.pt"
DIGITS_KIND = "diffadapt/conditional-ddpm"
FACES_KIND = "diffadapt/unconditional-ddpm"


def save_weights(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str], dtype: torch.dtype | None = None) -> None:
    tensors = {k: (v.detach().to(dtype) if dtype is not None and v.is_floating_point() else v.detach()).cpu().contiguous() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise InputError("weights file not found", path)
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        return load_file(str(path)), metadata
    except Exception as exc:  # safetensors' own error type has moved between releases
        raise InputError(f"not a readable safetensors file ({type(exc).__name__}: {exc})", path) from None


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
        with atomic_path(run_dir / STATE_FILE) as tmp:
            torch.save(resume_state, tmp)
    write_text_atomic(run_dir / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=False) + "\n")


def read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise InputError(f"no {CONFIG_FILE} here: not a diffadapt run folder", run_dir)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"config is not valid JSON ({exc})", path) from None


def load_checkpoint(path: str | Path, expected_kind: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config, EMA weights) of a run folder (or its model.safetensors), checking it is the expected model."""
    path = Path(path)
    run_dir = path.parent if path.is_file() else path
    if not run_dir.exists():
        raise InputError("checkpoint not found", path)
    config = read_config(run_dir)
    kind = config.get("kind")
    if kind != expected_kind:
        raise InputError(f"checkpoint is a {kind or 'unknown'} model, expected a {expected_kind} model", run_dir / CONFIG_FILE)
    weights, metadata = load_weights(run_dir / WEIGHTS_FILE)
    if metadata.get("kind", kind) != kind:
        raise InputError(f"weights are of a {metadata.get('kind')} model but config says {kind}", run_dir / WEIGHTS_FILE)
    return config, {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}


def load_state_dict_strict(module: torch.nn.Module, weights: dict[str, torch.Tensor], source: Path | str) -> None:
    """load_state_dict(strict) with a one-line error naming the file and the first mismatches."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    wrong_shape = [k for k in expected if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong_shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if wrong_shape:
            k = wrong_shape[0]
            parts.append(f"{len(wrong_shape)} keys of the wrong shape (e.g. {k}: {tuple(weights[k].shape)} vs {tuple(expected[k].shape)})")
        raise InputError("weights do not fit this model: " + "; ".join(parts), source)
    module.load_state_dict(weights, strict=True)


def safe_torch_load(path: str | Path, what: str) -> Any:
    """torch.load with weights_only=True: tensors and plain containers only, so a file can never run code."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} not found", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files and for pickles that would run code
        raise InputError(f"not a loadable PyTorch file ({type(exc).__name__})", path) from None


def load_state_dict_file(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """A plain state dict, or one wrapped as ``{'state_dict': ...}`` (the course's checkpoints)."""
    state = safe_torch_load(path, what)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError("expected a state dict of tensors (or {'state_dict': ...})", path)
    return state


def load_resume_state(run_dir: Path) -> dict[str, Any]:
    if not (run_dir / STATE_FILE).is_file():
        raise InputError("--resume needs state.pt from an earlier run here", run_dir)
    return safe_torch_load(run_dir / STATE_FILE, "resume state")
