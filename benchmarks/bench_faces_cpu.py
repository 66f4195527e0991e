"""The course face UNet on the CPU: ten 256x256 images with 50 DDIM steps, timed (the GPU numbers come
from benchmarks/gpu/session.py). The weights are the golden deterministic ones: the speed is the same.

    python benchmarks/bench_faces_cpu.py [--images 10] [--steps 50]
"""

from __future__ import annotations

import argparse
import time

import torch
from common import print_table

from diffadapt.apps.faces.models import COURSE_SCHEDULE, course_sampler
from diffadapt.diffusion.course_unet import CourseFaceUNet, golden_weights
from diffadapt.diffusion.noise_model import NoiseModel, sample_batched
from diffadapt.diffusion.sampling import SamplingSettings
from diffadapt.diffusion.schedule import LinearSchedule


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    model = CourseFaceUNet()
    model.load_state_dict(golden_weights(model))
    model.eval()
    noise_model = NoiseModel(lambda labels: model, LinearSchedule(COURSE_SCHEDULE), "course UNet", model, torch.device("cpu"), False, size_multiple=32)
    noises = torch.randn(args.images, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    sample_batched(noise_model, noises, course_sampler(noise_model, SamplingSettings(steps=args.steps)), batch_size=args.images)
    seconds = time.perf_counter() - start
    print_table("course face UNet on the CPU (fp32)", [
        (f"{args.images} images {args.size}x{args.size}, {args.steps} DDIM steps", f"{seconds:.1f} s", "printed (course allows 300 s on an RTX 2080 Ti)"),
        ("per model call (batch of all images)", f"{seconds / args.steps:.2f} s", "-"),
    ])


if __name__ == "__main__":
    main()
