"""Hostile inputs that are small on disk and huge in memory: each must be refused (exit 2) fast and in little
memory, or, when it is legal, read within the array budget.

    python benchmarks/bench_bombs.py [--rows 1000000] [--src OTHER/src]

Builds in a temporary folder:
- a course csv of 1,000,000 rows all naming one 28x28 PNG (refused: a csv names each image once);
- a course csv of 40 rows naming one 4096x4096 PNG (refused the same way), and 40 hard links to that PNG
  under 40 names (legal: 40 x 48 MiB decoded, read one image at a time into one array);
- a sparse 1 GiB model.safetensors whose header is not JSON, in a run folder beside a valid config.json;
- a well-formed sparse model.safetensors declaring one 1 GiB tensor where the network has another shape.
Each command runs as its own process; peak RSS is that process's (resource.getrusage(RUSAGE_CHILDREN)
after it alone has run, so this script's own memory never counts).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, machine
from PIL import Image


def measure(command: list[str], src: Path = REPO / "src") -> tuple[int, float, float, str]:
    """(exit code, peak RSS in MB, seconds, last stderr line) of ``diffadapt COMMAND`` in a fresh process.

    A fresh interpreter runs each command, so RUSAGE_CHILDREN's ru_maxrss (the largest of the children
    waited for) is this command's: the runner forks it and waits, and nothing else."""
    runner = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "seconds = time.perf_counter() - start\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "last = (done.stderr.strip().splitlines() or [''])[-1]\n"
        "print(done.returncode, peak, seconds, last, sep='\\t')\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", runner, sys.executable, "-m", "diffadapt", *command], capture_output=True, text=True, env=env,
                          check=True)
    code, peak_kb, seconds, last = done.stdout.rstrip("\n").split("\t", 3)
    return int(code), int(peak_kb) / 1024, float(seconds), last


def course(root: Path, names: list[str], image: np.ndarray, link_all: bool = False) -> Path:
    (root / "data").mkdir(parents=True)
    first = root / "data" / names[0]
    Image.fromarray(image).save(first)
    if link_all:
        for name in names[1:]:
            os.link(first, root / "data" / name)
    with open(root / "train.csv", "w") as handle:
        handle.write("image_name,label\n")
        handle.writelines(f"{name},3\n" for name in names)
    return root


def bad_safetensors(run: Path) -> Path:
    """A run folder: the shipped digit config, and a 1 GiB sparse model.safetensors with a header that is not JSON."""
    run.mkdir()
    shutil.copy(REPO / "src" / "diffadapt" / "assets" / "digits_default" / "config.json", run / "config.json")
    header = b'{"conv_in.weight": {"dtype":"F32","shape":[' + b"9" * 40
    with open(run / "model.safetensors", "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(1 << 30)
    return run


def wrong_shape_safetensors(run: Path) -> Path:
    """A run folder: the shipped digit config, and a well-formed model.safetensors whose first tensor is
    declared 1 GiB (16384 x 16384 float32, a sparse hole on disk) instead of its real shape."""
    run.mkdir()
    shutil.copy(REPO / "src" / "diffadapt" / "assets" / "digits_default" / "config.json", run / "config.json")
    size = 16384 * 16384 * 4
    header = json.dumps({"conv_in.weight": {"dtype": "F32", "shape": [16384, 16384], "data_offsets": [0, size]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(run / "model.safetensors", "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + size)
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--src", type=Path, default=REPO / "src", help="the diffadapt source tree to measure (default: this one)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        small = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
        big = np.tile(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (64, 64, 1))  # 4096x4096, a few hundred KB as PNG
        cases = [
            (f"{args.rows:,}-row csv naming one 28x28 PNG", course(tmp / "rows", ["a.png"] * args.rows, small), "data info"),
            ("40-row csv naming one 4096x4096 PNG", course(tmp / "big", ["a.png"] * 40, big), "data info"),
            ("40 distinct names of a 4096x4096 PNG (legal)", course(tmp / "big40", [f"{i:02d}.png" for i in range(40)], big, link_all=True),
             "data info"),
            ("sparse 1 GiB model.safetensors, header not JSON", bad_safetensors(tmp / "run"), "digits grid --ckpt"),
            ("sparse 1 GiB model.safetensors, well-formed, wrong shape", wrong_shape_safetensors(tmp / "run2"), "digits grid --ckpt"),
        ]
        for label, path, command in cases:
            words = command.split()
            argv = [*words, str(path), str(tmp / "grid.png")] if words[-1] == "--ckpt" else [*words, str(path)]
            code, peak, seconds, last = measure(argv, args.src)
            rows.append((label, f"diffadapt {command}", str(code), f"{peak:,.0f}", f"{seconds:.1f}", last.replace(str(tmp), "TMP")[:110]))
        baseline = measure(["--version"], args.src)
        rows.append(("(baseline: interpreter start, no input)", "diffadapt --version", str(baseline[0]), f"{baseline[1]:,.0f}", f"{baseline[2]:.1f}", ""))
    print_rows(rows)


def print_rows(rows: list[tuple[str, ...]]) -> None:
    header = ("input", "command", "exit", "peak RSS MB", "seconds", "message")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\nhostile inputs: exit status, peak memory and time of one command each\nmachine: {machine()}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"\n({time.perf_counter() - start:.0f} s in all; peak RSS from getrusage(RUSAGE_CHILDREN) of a runner per command)")
