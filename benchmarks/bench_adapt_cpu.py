"""Adaptation cost on 2 CPU cores: seconds per training step of every method (real MNIST-M -> USPS, the
``matched`` recipe, batch 256) beside DANN's, one report-recipe epoch, and the t-SNE of 10,000 features.

    python benchmarks/bench_adapt_cpu.py [--steps 30] [--batch-size 256]

Goal (issue: adaptation that adapts): a method's step costs at most 2x DANN's.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from common import print_table, require

from diffadapt.adapt.config import preset
from diffadapt.adapt.trainer import train_adaptation
from diffadapt.apps.adaptation.runs import load_pair
from diffadapt.apps.adaptation.tsne import embed
from diffadapt.data.memory import TensorImages


def first(data: TensorImages, count: int) -> TensorImages:
    return TensorImages(data.images[:count], data.labels[:count], data.domain)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per method")
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    source, target, framed = load_pair(str(require("mnistm28.npz")), str(require("usps16_train.npz")), preset("matched", "dann"))
    subset = first(source.train, args.steps * args.batch_size)
    rows, per_step = [], {}
    for method in ("source", "dann", "cdan", "fixmatch", "vada"):
        config = replace(preset("matched", method, epochs=1, batch_size=args.batch_size), source_box=framed.source_box, target_box=framed.target_box)
        result = train_adaptation(config, subset, first(source.val, 512), target.train, first(target.val, 512), torch.device("cpu"), progress=False)
        per_step[method] = result.train_seconds / result.steps
    for method, seconds in per_step.items():
        rows.append((f"{method}: one step, batch {args.batch_size} per domain (matched recipe)", f"{seconds * 1000:.0f} ms",
                     f"{seconds / per_step['dann']:.2f}x DANN (goal <= 2x)"))
    config = preset("report", "dann", epochs=1, batch_size=512)
    report_source, report_target, _ = load_pair(str(require("mnistm28.npz")), str(require("usps16_train.npz")), config)
    result = train_adaptation(config, report_source.train, first(report_source.val, 512), report_target.train, first(report_target.val, 512),
                              torch.device("cpu"), progress=False)
    rows.append((f"one DANN epoch, report recipe, {len(report_source.train):,} + {len(report_target.train):,} images, batch 512",
                 f"{result.train_seconds:.1f} s", "printed"))
    features = np.random.default_rng(0).normal(size=(10000, 128))
    features[:5000] += 2.0
    start = time.perf_counter()
    embed(features)
    rows.append(("t-SNE of 10,000 128-d features (openTSNE)", f"{time.perf_counter() - start:.1f} s", "<= 30 s"))
    print_table("domain adaptation on the CPU", rows)


if __name__ == "__main__":
    main()
