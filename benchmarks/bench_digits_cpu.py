"""The shipped digit model on the CPU: the 1,000 graded images (time and course-classifier accuracy), and
one training step of the shipped network (our train_step: epsilon loss, clip, AdamW, EMA) at batch 256 in
several variants, old and new in one run, in img/s and GFLOP/s against this CPU's measured matmul peak.

    python benchmarks/bench_digits_cpu.py [--steps 10] [--variants old,bf16-cl-fused] [--training-only]

For a CPU without native bf16 (AVX2 only) run it with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from common import print_table, require

from diffadapt.cli import main as cli
from diffadapt.device import cpu_bf16_supported


@dataclass(frozen=True)
class StepVariant:
    """How one training step runs: autocast precision, memory layout, AdamW implementation, torch.compile."""

    name: str
    bf16: bool
    channels_last: bool
    optimizer: Literal["for-loop", "foreach", "fused"]
    compile: bool = False


# "old": the trainer on a CPU until 2026-12-04 (fp32, contiguous, AdamW's default for-loop on the CPU);
# "new": what train_diffusion now does on this CPU with its defaults (runtime_for, fused AdamW); the others
# change one thing each.
VARIANTS = {
    "old": StepVariant("old", False, False, "for-loop"),
    "bf16": StepVariant("bf16", True, False, "for-loop"),
    "bf16-cl": StepVariant("bf16-cl", True, True, "for-loop"),
    "bf16-cl-fused": StepVariant("bf16-cl-fused", True, True, "fused"),
    "fp32-fused": StepVariant("fp32-fused", False, False, "fused"),
    "bf16-fused": StepVariant("bf16-fused", True, False, "fused"),
    "bf16-fused-compile": StepVariant("bf16-fused-compile", True, False, "fused", compile=True),
}


def trainer_variant() -> StepVariant:
    from diffadapt.diffusion.train import TrainConfig, runtime_for

    runtime = runtime_for(TrainConfig(), torch.device("cpu"))
    return StepVariant("new", runtime.bf16, runtime.channels_last, "fused")


def step_seconds(variant: StepVariant, model_config, batch: int, repeats: int) -> tuple[float, float, float]:
    """(best seconds per step, first-step seconds, FLOPs per step) of our train_step + EMA for ``variant``."""
    from torch.utils.flop_counter import FlopCounterMode

    from diffadapt.diffusion.schedule import LinearSchedule
    from diffadapt.diffusion.train import Runtime, TrainConfig, train_step, update_ema
    from diffadapt.diffusion.unet import ConditionalUNet

    torch.manual_seed(0)
    model = ConditionalUNet(model_config)
    ema = copy.deepcopy(model).requires_grad_(False)
    layout = torch.channels_last if variant.channels_last else torch.contiguous_format
    model, ema = model.to(memory_format=layout), ema.to(memory_format=layout)
    kinds = {"for-loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **kinds[variant.optimizer])
    train_model = torch.compile(model) if variant.compile else model
    x0 = (torch.rand(batch, model_config.in_channels, model_config.image_size, model_config.image_size) * 2 - 1).contiguous(memory_format=layout)
    labels = torch.randint(0, 10, (batch,))
    schedule, generator = LinearSchedule(), torch.Generator().manual_seed(0)
    config = TrainConfig(batch_size=batch)
    runtime = Runtime(torch.device("cpu"), variant.bf16, variant.channels_last)

    def step() -> None:
        train_step(model, train_model, optimizer, schedule, x0, labels, generator, config, model_config.null_label, runtime, (0, 1))
        update_ema(ema, model, 0.999)

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    counter = FlopCounterMode(display=False)
    with counter:
        train_step(model, model, optimizer, schedule, x0, labels, generator, config, model_config.null_label, runtime, (0, 1))
    return min(times), first, float(counter.get_total_flops())


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Measured FLOP/s of an n x n matmul in ``dtype`` on this CPU and thread count (the best of repeats)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def training_rows(names: list[str], batch: int, repeats: int) -> list[tuple[str, str, str]]:
    from diffadapt.diffusion.models import default_digits_checkpoint
    from diffadapt.diffusion.unet import UNetConfig
    from diffadapt.io import read_json

    model_config = UNetConfig.from_dict(read_json(default_digits_checkpoint() / "config.json")["model"])
    bf16_peak, fp32_peak = matmul_peak(torch.bfloat16), matmul_peak(torch.float32)
    amx = "amx_bf16" in Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else False
    rows = [("CPU kind", f"{torch.backends.cpu.get_cpu_capability()}, AMX {'yes' if amx else 'no'}, "
             f"native bf16 {'yes' if cpu_bf16_supported() else 'no'}, {torch.get_num_threads()} threads", "-"),
            ("peak: 2048^3 matmul bf16 / fp32", f"{bf16_peak / 1e9:.0f} / {fp32_peak / 1e9:.0f} GFLOP/s", "-")]
    rates = {}
    variants = {**VARIANTS, "new": trainer_variant()}
    for name in names:
        variant = variants[name]
        seconds, first, flops = step_seconds(variant, model_config, batch, repeats)
        rates[name] = batch / seconds
        peak = bf16_peak if variant.bf16 else fp32_peak
        label = f"{name} ({'bf16' if variant.bf16 else 'fp32'}, {'channels_last' if variant.channels_last else 'contiguous'}, {variant.optimizer} AdamW)"
        rows.append((f"training step, batch {batch}, shipped network: {label}",
                     f"{seconds * 1000:.0f} ms, {batch / seconds:.0f} img/s, {flops / seconds / 1e9:.0f} GFLOP/s "
                     f"({flops / seconds / peak * 100:.0f} % of its matmul peak); first step {first:.1f} s", "-"))
    if "old" in rates and "new" in rates:
        rows.append(("training img/s: new over old, same run", f"{rates['new'] / rates['old']:.2f}x", ">= 2x"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=None, help="sampler steps of the graded images (default: the checkpoint's)")
    parser.add_argument("--variants", default="old,new", help=f"training-step variants: old, new, {', '.join(v for v in VARIANTS if v != 'old')}")
    parser.add_argument("--batch", type=int, default=256, help="training batch")
    parser.add_argument("--repeats", type=int, default=4, help="timed training steps per variant (the best counts)")
    parser.add_argument("--training-only", action="store_true", help="skip the graded images")
    args = parser.parse_args()
    rows = []
    if not args.training_only:
        classifier = require("hw2_digit_classifier.pth")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "graded"
            extra = ["--steps", str(args.steps)] if args.steps else []
            start = time.perf_counter()
            code = cli(["digits", "generate", str(out), "--device", "cpu", *extra])
            seconds = time.perf_counter() - start
            assert code == 0
            from diffadapt.apps.digits.scoring import evaluate_folder

            scores = evaluate_folder(out, classifier=classifier)
        rows.append(("1,000 graded images, shipped checkpoint (wall, incl. loading)", f"{seconds:.1f} s", "<= 40 s"))
        rows.append(("course classifier accuracy on them", f"{scores.overall * 100:.2f} %", ">= 99.4 %"))
        rows.append(("judge accuracy / Fréchet distance", f"{scores.judge_accuracy * 100:.2f} % / {scores.frechet:.4f}",
                     f"floor (1,000 real) {scores.floor_at_n:.4f}"))
    rows += training_rows(args.variants.split(","), args.batch, args.repeats)
    print_table("digit diffusion on the CPU", rows)


if __name__ == "__main__":
    main()
