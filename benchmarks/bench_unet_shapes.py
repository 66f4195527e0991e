"""Default UNet against the patch-2 shapes prepared for GPUs, on the CPU: parameters, FLOPs, held-out loss
after the same number of training steps on real MNIST-M, and CPU time per step and per guided forward.

    python benchmarks/bench_unet_shapes.py [--steps 300] [--batch 128] [--lr 1e-3] [--shapes default p2-b96-m12-r1 ...]

The loss is epsilon-MSE on 2,048 real MNIST-M test images at fixed timesteps and noise (the same for every
model), after `--steps` AdamW steps of the trainer (fp32 on the CPU). It compares how much each shape learns
per step; a GPU run then multiplies steps by its own images/s, which is what benchmarks/gpu/digits_round2.py
measures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import machine, require

from diffadapt.data import TensorImages, read_source
from diffadapt.diffusion.checkpoint import DIGITS_KIND
from diffadapt.diffusion.schedule import LinearSchedule, ScheduleConfig
from diffadapt.diffusion.train import DataInfo, TrainConfig, train_diffusion
from diffadapt.diffusion.unet import UNetConfig, count_flops, count_parameters
from diffadapt.images import nhwc_to_nchw, uint8_to_model

SHAPES = {
    "default (32-64-128, 28/14/7)": UNetConfig(),
    "p2-b96-m12-r1 (96-192, 14/7)": UNetConfig(patch_size=2, base_channels=96, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,)),
    "p2-b128-m11-r1 (128-128, 14/7)": UNetConfig(patch_size=2, base_channels=128, channel_mults=(1, 1), num_res_blocks=1, attention_levels=(1,)),
    "p2-b80-m12-r2 (80-160, 14/7)": UNetConfig(patch_size=2, base_channels=80, channel_mults=(1, 2), num_res_blocks=2, attention_levels=(1,)),
}


@torch.no_grad()
def held_out_loss(model: torch.nn.Module, x0: torch.Tensor, labels: torch.Tensor, schedule: LinearSchedule) -> float:
    generator = torch.Generator().manual_seed(123)
    t = torch.randint(0, schedule.num_timesteps, (len(x0),), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    total = 0.0
    for start in range(0, len(x0), 256):
        part = slice(start, start + 256)
        prediction = model(schedule.q_sample(x0[part], t[part], eps[part]), t[part], labels[part])
        total += float((prediction - eps[part]).square().sum())
    return total / eps.numel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), help="names (the part before the space) of SHAPES to run")
    args = parser.parse_args()
    splits = read_source(str(require("mnistm28.npz")), seed=0)
    train = TensorImages.from_digitset(splits["train"])
    test = splits["test"] if "test" in splits else splits["val"]
    pick = np.random.default_rng(0).permutation(len(test.images))[:2048]
    x0_test = uint8_to_model(nhwc_to_nchw(test.images[pick]))
    labels_test = torch.from_numpy(test.labels[pick]).long()
    schedule_config = ScheduleConfig()
    schedule = LinearSchedule(schedule_config)
    rows = []
    for name, config in SHAPES.items():
        if name.split()[0] not in args.shapes and name not in args.shapes:
            continue
        train_config = TrainConfig(steps=args.steps, batch_size=args.batch, lr=args.lr, warmup_steps=min(50, args.steps // 4),
                                   seed=0, checkpoint_every=0, log_every=50, precision="fp32")
        info = DataInfo(source="mnistm28.npz", domain="mnistm", channels=3, size=28, num_images=len(train))
        with tempfile.TemporaryDirectory() as tmp:
            result = train_diffusion(Path(tmp) / "run", train, config, schedule_config, train_config, info, DIGITS_KIND, progress=True)
        model = result.model.eval()
        loss = held_out_loss(model, x0_test, labels_test, schedule)
        x = torch.randn(1000, 3, 28, 28)
        t, y = torch.full((1000,), 250), torch.randint(0, 10, (1000,))
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            model(x[:8], t[:8], y[:8])
            start = time.perf_counter()
            model(x, t, y)
            forward_s = time.perf_counter() - start
        rows.append((name, count_parameters(model), count_flops(config)[0] / 1e9, loss, result.train_seconds / result.steps, forward_s))
        print(f"{name}: held-out loss {loss:.4f}", flush=True)
    print(f"\nUNet shapes after {args.steps} steps at batch {args.batch} (lr {args.lr:g}) on real MNIST-M\nmachine: {machine()}\n")
    print("| shape | parameters | GFLOP per forward | held-out eps-MSE | CPU s per step (fp32) | CPU s per 1,000-image forward (bf16) |")
    print("|---|---|---|---|---|---|")
    for name, params, gflop, loss, step_s, forward_s in rows:
        print(f"| {name} | {params / 1e6:.2f} M | {gflop:.2f} | {loss:.4f} | {step_s:.2f} | {forward_s:.2f} |")


if __name__ == "__main__":
    main()
