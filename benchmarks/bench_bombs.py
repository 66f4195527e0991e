"""Hostile inputs that are small on disk and huge in memory: each must be refused (exit 2) fast and in little
memory, or, when it is legal, read within the array budget.

    python benchmarks/bench_bombs.py [--rows 1000000] [--src OTHER/src]

Builds in a temporary folder:
- a course csv of 1,000,000 rows all naming one 28x28 PNG (refused: a csv names each image once);
- a course csv of 40 rows naming one 4096x4096 PNG (refused the same way), and 40 hard links to that PNG
  under 40 names (legal: 40 x 48 MiB decoded, read one image at a time into one array);
- a sparse 1 GiB model.safetensors whose header is not JSON, in a run folder beside a valid config.json;
- a well-formed sparse model.safetensors declaring one 1 GiB tensor where the network has another shape;
- torch files whose storages are deflated (a few MB on disk, 3 GiB once loaded): a noise file and a UNet.pt;
- a zip of 20,000 copies of a 1x1 PNG as faces to train on at 256 x 256 (each face grows 65,536-fold);
- SVHN .mat files of float64 zeros, compressed: 80,000 images (1.97 GB, legal) and 102,000 (2.5 GB, refused);
- an .npz of 600,000 28x28 float64 zeros, compressed (3.76 GB, legal: under the 4 GiB array budget).
Each command runs as its own process; peak RSS is that process's (resource.getrusage(RUSAGE_CHILDREN)
after it alone has run, so this script's own memory never counts).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
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


def deflated_torch_file(path: Path, values: int, wrap: bool = False) -> Path:
    """A torch file holding a (1, 3, 8, 8) view into a storage of ``values`` float32 zeros (as a state dict
    with ``wrap``), its zip members deflated: small on disk, 4 * values bytes once loaded."""
    import torch

    raw = path.with_suffix(".raw")
    view = torch.zeros(values)[:192].view(1, 3, 8, 8)
    torch.save({"state_dict": {"w": view}} if wrap else view, raw)
    with zipfile.ZipFile(raw) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info.filename))
    raw.unlink()
    return path


def noise_folder(folder: Path, noise_file: Path | None = None) -> Path:
    """A folder of one noise file: ``noise_file`` moved in, or a real (1, 3, 64, 64) Gaussian one."""
    import torch

    folder.mkdir()
    if noise_file is not None:
        noise_file.rename(folder / "00.pt")
    else:
        torch.save(torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)), folder / "00.pt")
    return folder


def tiny_faces_zip(path: Path, count: int) -> Path:
    pixel = io.BytesIO()
    Image.fromarray(np.zeros((1, 1, 3), dtype=np.uint8)).save(pixel, format="PNG")
    with zipfile.ZipFile(path, "w") as out:
        for index in range(count):
            out.writestr(f"{index:05d}.png", pixel.getvalue())
    return path


def svhn_mat(folder: Path, images: int) -> Path:
    from scipy.io import savemat

    folder.mkdir()
    savemat(folder / "train_32x32.mat", {"X": np.zeros((32, 32, 3, images)), "y": np.ones((images, 1))}, do_compression=True)
    return folder / "train_32x32.mat"


def float_npz(path: Path, images: int) -> Path:
    np.savez_compressed(path, x=np.zeros((images, 28, 28)), y=np.zeros(images, np.uint8))
    return path


def gzip_idx_folder(folder: Path, images: int) -> Path:
    """An MNIST IDX folder of ``images`` all-zero 28x28 images, gzipped: under a megabyte per million images."""
    import gzip
    import struct

    folder.mkdir()
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb", 9) as handle:
        handle.write(struct.pack(">IIII", 0x803, images, 28, 28))
        for _ in range(images // 10_000):
            handle.write(bytes(10_000 * 28 * 28))
    with gzip.open(folder / "train-labels-idx1-ubyte.gz", "wb", 9) as handle:
        handle.write(struct.pack(">II", 0x801, images) + bytes(images))
    return folder


def blank_lines_bz2(path: Path, mebibytes: int) -> Path:
    """A LIBSVM .bz2 of ``mebibytes`` MiB of empty lines: a few hundred bytes on disk."""
    import bz2

    packer = bz2.BZ2Compressor(9)
    path.write_bytes(b"".join(packer.compress(b"\n" * (1 << 20)) for _ in range(mebibytes)) + packer.flush())
    return path


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
        good_noise = noise_folder(tmp / "noise_ok")
        cases += [
            ("noise .pt, storage deflated, 3 GiB once loaded", noise_folder(tmp / "noise_bomb", deflated_torch_file(tmp / "n.pt", 3 << 28)),
             f"faces generate NOISE {tmp / 'faces_out'} --unet {tmp / 'missing.pt'}"),
            ("UNet.pt, storage deflated, 3 GiB once loaded", deflated_torch_file(tmp / "UNet.pt", 3 << 28, wrap=True),
             f"faces generate {good_noise} {tmp / 'faces_out'} --unet PATH"),
            ("zip of 20,000 1x1 PNGs as 256x256 faces", tiny_faces_zip(tmp / "faces.zip", 20_000),
             f"faces train PATH --out {tmp / 'face_run'} --size 256 --base-channels 8 --steps 1 --batch-size 2 --no-progress --no-compile"),
            ("SVHN .mat, float64 X of 80,000 images (1.97 GB, legal)", svhn_mat(tmp / "svhn_ok", 80_000), "data info"),
            ("SVHN .mat, float64 X of 102,000 images (2.5 GB)", svhn_mat(tmp / "svhn_big", 102_000), "data info"),
            ("npz, float64 x of 600,000 28x28 (3.76 GB, legal)", float_npz(tmp / "f64.npz", 600_000), "data info"),
            ("gzipped IDX, 1,300,000 zero images (1.0 GB unpacked, legal)", gzip_idx_folder(tmp / "idx", 1_300_000), "data info"),
            ("LIBSVM usps.bz2 of 255 MiB of empty lines", blank_lines_bz2(tmp / "usps.bz2", 255), "data info"),
        ]
        for label, path, command in cases:
            words = command.split()
            if "PATH" in words or "NOISE" in words:
                argv = [str(path) if word in ("PATH", "NOISE") else word for word in words]
                command = " ".join(word if word in ("PATH", "NOISE") or not word.startswith(str(tmp)) else "TMP/" + Path(word).name for word in words)
            elif words[-1] == "--ckpt":
                argv = [*words, str(path), str(tmp / "grid.png")]
            else:
                argv = [*words, str(path)]
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
