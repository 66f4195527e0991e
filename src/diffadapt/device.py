"""Choosing the torch device and the arithmetic precision that suits it."""

from __future__ import annotations

from typing import Literal, get_args

import torch

from diffadapt.errors import InputError

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)


def pick_device(name: str = "auto") -> torch.device:
    """"auto": CUDA when there is one, else the CPU; otherwise a torch device name ("cpu", "cuda:1") or a
    torch.device."""
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise InputError(f"device must be a device name (auto, cpu, cuda, cuda:N), got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but this machine has no CUDA GPU")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"unsupported device {name!r} (auto, cpu, cuda, cuda:N)")
    return device


def bf16_autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """The one bf16 autocast context of sampling and training (a no-op when not ``enabled``)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def cpu_bf16_supported() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX-512 BF16 / AMX); AVX2-only CPUs emulate it slowly."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> bool:
    """True for bf16 autocast. auto: bf16 on CUDA, and on CPUs with native bf16 (twice as fast there)."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16_supported())
