"""Domain adaptation on the CPU: one DANN epoch of the report's setting (44,800 MNIST-M + USPS images,
batch 512) and t-SNE of 10,000 features.

    python benchmarks/bench_adapt_cpu.py
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import torch

from common import print_table, require

from diffadapt.adapt.config import preset
from diffadapt.adapt.trainer import train_adaptation
from diffadapt.apps.adaptation.tsne import embed
from diffadapt.data import DigitSet, TensorImages, read_source, train_val


def main() -> None:
    mnistm = read_source(require("mnistm28.npz"), progress=False)["train"]
    usps_train, usps_val = train_val(read_source(require("usps16_train.npz")))
    source = TensorImages.from_digitset(DigitSet(mnistm.images[:44800], mnistm.labels[:44800], "mnistm"))
    source_val = TensorImages.from_digitset(DigitSet(mnistm.images[44800:46800], mnistm.labels[44800:46800], "mnistm"))
    target = TensorImages.from_digitset(usps_train, channels=3, size=28)
    target_val = TensorImages.from_digitset(usps_val, channels=3, size=28)
    rows = []
    for recipe in ("report", "ours"):
        config = replace(preset(recipe, "dann", epochs=1))
        result = train_adaptation(config, source, source_val, target, target_val, torch.device("cpu"), progress=True)
        rows.append((f"one DANN epoch ({recipe} recipe), 44,800 + {len(target)} images, batch 512", f"{result.train_seconds:.1f} s", "printed"))
    features = np.random.default_rng(0).normal(size=(10000, 128)).astype(np.float64)
    features[:5000] += 2.0
    start = time.perf_counter()
    embed(features)
    rows.append(("t-SNE of 10,000 128-d features (openTSNE)", f"{time.perf_counter() - start:.1f} s", "<= 30 s"))
    print_table("domain adaptation on the CPU", rows)


if __name__ == "__main__":
    main()
