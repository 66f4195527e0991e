"""Adapting to the user's folder (``adapt predict --adapt``) and the label-free accuracy estimate, measured.

For each run and each labelled folder: the folder is written as PNGs exactly as a user has it (no labels
beside it), predicted by ``diffadapt adapt predict`` plain and with ``--adapt`` (each method asked), and the
predictions and the printed estimate are compared with the truth, which only this script reads.

    python benchmarks/bench_adapt_folder.py --run runs/dev/fm_usps --folder usps-like=usps:val \\
        --folder usps-like-inverted=usps:val:invert --variants plain,fixmatch,shot
    python benchmarks/bench_adapt_folder.py --run default-usps --folder usps-val=USPS_NPZ:val ...

A folder is ``NAME=SPEC:SPLIT[:TRANSFORM][:N]``: any source ``data.read_source`` reads (an embedded domain's
name, an npz, the MNIST IDX folder) and its split (``val`` is the split ``train_val`` holds out, ``test`` a
test split); TRANSFORM ``invert`` (255 - x) or ``rot90`` makes a synthetic shift; N keeps the first N images
of a fixed shuffle. ``--run default-usps`` / ``default-svhn`` are the shipped models. Time per 1,000 images
counts the whole command (reading, adapting, predicting), on this machine's cores.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine

from diffadapt.apps.adaptation.runs import shipped_model
from diffadapt.cli import main as cli
from diffadapt.data import read_source, train_val
from diffadapt.io import write_png


def run_path(name: str) -> Path:
    """A run folder, or ``default-usps`` / ``default-svhn`` for a shipped model."""
    return shipped_model(name.split("-", 1)[1]) if name.startswith("default-") else Path(name)


def folder_images(spec: str) -> tuple[np.ndarray, np.ndarray]:
    source, split, *rest = spec.split(":")
    transform = next((r for r in rest if not r.isdigit()), "")
    count = next((int(r) for r in rest if r.isdigit()), 0)
    splits = read_source(source, progress=False)
    digits = train_val(splits, seed=0)[1] if split == "val" else splits[split]
    images, labels = digits.images, digits.labels
    if count:
        order = np.random.default_rng(0).permutation(len(images))[:count]
        images, labels = images[order], labels[order]
    if transform == "invert":
        images = 255 - images
    elif transform == "rot90":
        images = np.ascontiguousarray(np.rot90(images, axes=(1, 2)))
    return images, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True)
    parser.add_argument("--folder", action="append", required=True, metavar="NAME=SPEC:SPLIT[:TRANSFORM][:N]")
    parser.add_argument("--variants", default="plain,fixmatch,shot")
    parser.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE", help="another adapt predict option, e.g. adapt-steps=200")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    extra = [part for item in args.set for part in (f"--{item.split('=', 1)[0]}", item.split("=", 1)[1])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.folder:
            name, spec = item.split("=", 1)
            images, labels = folder_images(spec)
            folder = Path(tmp) / name
            folder.mkdir()
            for i, image in enumerate(images):
                write_png(folder / f"{i:05d}.png", image[..., 0] if image.shape[-1] == 1 else image)
            truth = dict((f"{i:05d}.png", int(y)) for i, y in enumerate(labels))
            for run in args.run:
                ckpt = str(run_path(run))
                for variant in args.variants.split(","):
                    out = Path(tmp) / f"{name}-{Path(run).name}-{variant}.csv"
                    options = [] if variant == "plain" else ["--adapt", "--adapt-method", variant, *extra]
                    start = time.perf_counter()
                    code = cli(["adapt", "predict", str(folder), str(out), "--ckpt", ckpt, "--no-progress", *options])
                    seconds = time.perf_counter() - start
                    if code != 0:
                        raise SystemExit(f"adapt predict failed ({code}) on {name} with {run} {variant}")
                    with out.open() as handle:
                        predicted = {row["image_name"]: int(row["label"]) for row in csv.DictReader(handle)}
                    accuracy = float(np.mean([predicted[k] == v for k, v in truth.items()]))
                    estimate = json.loads(out.with_name(out.stem + ".estimate.json").read_text())["estimated_accuracy"]
                    rows.append({"folder": name, "images": len(labels), "run": run, "variant": variant, "accuracy": accuracy,
                                 "estimate": estimate, "error": estimate - accuracy, "seconds": seconds,
                                 "seconds_per_1000": 1000 * seconds / len(labels)})
                    print(f"  {name} {run} {variant}: accuracy {accuracy:.4f}, estimate {estimate:.4f}, {seconds:.1f} s", flush=True)
    print(f"\nAdapting to the folder; machine: {machine()}\n")
    print("| folder | images | run | variant | accuracy | estimate | estimate - accuracy | s | s per 1,000 images |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['folder']} | {r['images']} | {r['run']} | {r['variant']} | {r['accuracy']:.4f} | {r['estimate']:.4f} | "
              f"{r['error']:+.4f} | {r['seconds']:.1f} | {r['seconds_per_1000']:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
