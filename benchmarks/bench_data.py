"""Data layer speed: 60,000 MNIST-M images from the course layout (PNG files) and from npz, and the cost of
serving shuffled batches of 256 from memory against one training step of the default digit model.

    python benchmarks/bench_data.py [--images 60000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import print_table, require

from diffadapt.data import DigitSet, TensorImages, read_source
from diffadapt.data.batches import epoch_batches
from diffadapt.data.prepare import write_course_layout
from diffadapt.images import uint8_to_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=60000)
    args = parser.parse_args()
    npz = require("mnistm28.npz")
    rows = []

    start = time.perf_counter()
    splits = read_source(npz, progress=False)
    npz_seconds = time.perf_counter() - start
    total = sum(len(s) for s in splits.values())
    rows.append(("read npz (all 68,002 images)", f"{total / npz_seconds:,.0f} images/s ({npz_seconds:.2f} s)", "-"))

    everything = DigitSet(np.concatenate([s.images for s in splits.values()])[: args.images],
                          np.concatenate([s.labels for s in splits.values()])[: args.images], "mnistm")
    with tempfile.TemporaryDirectory() as tmp:
        write_course_layout({"train": everything}, Path(tmp) / "course", progress=False)
        start = time.perf_counter()
        course = read_source(Path(tmp) / "course", progress=False)["train"]
        png_seconds = time.perf_counter() - start
    assert np.array_equal(course.images, everything.images)
    rows.append((f"read course layout ({args.images:,} PNG files)", f"{args.images / png_seconds:,.0f} images/s ({png_seconds:.2f} s)", "-"))

    data = TensorImages.from_digitset(everything)
    order = epoch_batches(len(data), 256, torch.Generator().manual_seed(0))
    start = time.perf_counter()
    count = min(200, len(order))
    for index in order[:count]:
        images, labels = data.images[index], data.labels[index]
        x0 = uint8_to_model(images)
    serve_ms = (time.perf_counter() - start) / count * 1000

    from diffadapt.diffusion.unet import ConditionalUNet, UNetConfig

    model = ConditionalUNet(UNetConfig())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    t = torch.randint(0, 500, (256,))
    times = []
    for _ in range(4):
        begin = time.perf_counter()
        loss = F.mse_loss(model(x0, t, labels), x0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - begin)
    step_ms = min(times[1:]) * 1000
    rows.append(("serve one shuffled batch of 256 (gather + to [-1, 1])", f"{serve_ms:.2f} ms", "-"))
    rows.append(("one training step, default model, batch 256 (eager fp32)", f"{step_ms:.0f} ms", "-"))
    rows.append(("batch serving / training step", f"{serve_ms / step_ms * 100:.2f} %", "< 5 %"))
    print_table("data layer benchmark", rows)


if __name__ == "__main__":
    main()
