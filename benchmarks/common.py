"""Helpers shared by the benchmarks: where the real data is, and a table printer."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DIFFADAPT_SHARED_DATA", REPO.parent / "shared" / "data"))


def require(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        sys.exit(f"skipped: {path} is absent (the real data of ../shared/data is needed)")
    return path


def machine() -> str:
    import torch

    threads = torch.get_num_threads()
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}"
    # The CPU's vector unit decides the speed (AVX-512 with native bf16 runs `auto` precision in bf16, AVX2 in fp32).
    capability = torch.backends.cpu.get_cpu_capability()
    return f"{platform.processor() or platform.machine()} ({capability}), {os.cpu_count()} cores, {threads} torch threads, torch {torch.__version__}"


def print_table(title: str, rows: list[tuple[str, str, str]]) -> None:
    """rows: (measure, value, goal)."""
    widths = [max(len(r[i]) for r in rows + [("measure", "value", "goal")]) for i in range(3)]
    print(f"\n{title}\nmachine: {machine()}\n")
    header = ("measure", "value", "goal")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
