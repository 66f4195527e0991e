"""The shipped digit model on the CPU: the 1,000 graded images (time and course-classifier accuracy), and
one training step of the default model at batch 256 with our trainer's settings against a plain eager
fp32 step.

    python benchmarks/bench_digits_cpu.py [--steps 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import print_table, require

from diffadapt.cli import main as cli


def training_step_times(batch: int = 256, repeats: int = 3) -> tuple[float, float]:
    """(plain eager fp32 step, our trainer's step) in seconds, same model, batch and data."""
    from diffadapt.diffusion.schedule import LinearSchedule, epsilon_loss
    from diffadapt.diffusion.train import update_ema
    from diffadapt.diffusion.unet import ConditionalUNet, UNetConfig

    x0 = torch.rand(batch, 3, 28, 28) * 2 - 1
    labels = torch.randint(0, 10, (batch,))
    t = torch.randint(0, 500, (batch,))

    torch.manual_seed(0)
    plain = ConditionalUNet(UNetConfig())
    plain_opt = torch.optim.AdamW(plain.parameters(), lr=1e-4)

    def plain_step() -> None:
        loss = F.mse_loss(plain(x0, t, labels), x0)
        plain_opt.zero_grad()
        loss.backward()
        plain_opt.step()

    torch.manual_seed(0)
    ours = ConditionalUNet(UNetConfig())
    ema = ConditionalUNet(UNetConfig()).requires_grad_(False)
    ours_opt = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    schedule = LinearSchedule()
    generator = torch.Generator().manual_seed(0)

    def our_step() -> None:
        loss = epsilon_loss(ours, schedule, x0, labels, generator, 0.1, 10)
        ours_opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ours.parameters(), 1.0, foreach=True)
        ours_opt.step()
        update_ema(ema, ours, 0.999)

    results = []
    for step in (plain_step, our_step):
        step()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        results.append(min(times))
    return results[0], results[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the checkpoint's)")
    args = parser.parse_args()
    classifier = require("hw2_digit_classifier.pth")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "graded"
        extra = ["--steps", str(args.steps)] if args.steps else []
        start = time.perf_counter()
        code = cli(["digits", "generate", str(out), "--device", "cpu", *extra])
        seconds = time.perf_counter() - start
        assert code == 0
        from diffadapt.apps.digits.scoring import evaluate_folder

        scores = evaluate_folder(out, classifier=classifier)
    rows.append(("1,000 graded images, shipped checkpoint (wall, incl. loading)", f"{seconds:.1f} s", "<= 300 s"))
    rows.append(("course classifier accuracy on them", f"{scores.overall * 100:.2f} %", ">= 98 %"))
    rows.append(("judge accuracy / Fréchet distance", f"{scores.judge_accuracy * 100:.2f} % / {scores.frechet:.4f}", f"floor (1,000 real) {scores.floor_at_n:.4f}"))
    plain, ours = training_step_times()
    rows.append(("training step, batch 256: plain eager fp32", f"{plain * 1000:.0f} ms", "-"))
    rows.append(("training step, batch 256: our trainer (loss, clip, AdamW, EMA)", f"{ours * 1000:.0f} ms ({ours / plain:.2f}x)", "<= 2x plain"))
    print_table("digit diffusion on the CPU", rows)


if __name__ == "__main__":
    main()
