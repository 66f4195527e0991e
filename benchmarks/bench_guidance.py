"""Guidance settings against quality and time: 1,000 graded images per setting, scored by the course's
LeNet (accuracy) and our judge (accuracy, Fréchet distance to the real test images).

    python benchmarks/bench_guidance.py --out runs/guidance_sweep 4 4@56:405 3@56:405 ...

A setting is ``S`` (guidance s at every step) or ``S@LO:HI`` (s at timesteps LO..HI, the conditional model
elsewhere). Each finished setting is appended to OUT/results.jsonl and skipped when the command is run
again, so an interrupted sweep resumes. Runs on whatever device ``--device`` picks (CPU here).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, require  # noqa: E402

from diffadapt.apps.digits.generate import graded_labels, initial_noise, sample_digits, to_images  # noqa: E402
from diffadapt.cli.common import pick_device  # noqa: E402
from diffadapt.diffusion.models import load_model  # noqa: E402
from diffadapt.evaluate.generated import score_digits  # noqa: E402
from diffadapt.evaluate.judge import load_judge  # noqa: E402
from diffadapt.evaluate.lenet import load_course_classifier  # noqa: E402
from diffadapt.images import nhwc_to_nchw  # noqa: E402


def parse_setting(text: str) -> tuple[float, str | tuple[int, int]]:
    scale, _, interval = text.partition("@")
    if not interval:
        return float(scale), "all"
    lo, hi = interval.split(":")
    return float(scale), (int(lo), int(hi))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("settings", nargs="+", help="S or S@LO:HI")
    parser.add_argument("--out", required=True)
    parser.add_argument("--ckpt", default=None, help="digit run folder (default: the shipped checkpoint)")
    parser.add_argument("--method", choices=("ddpm", "ddim"), default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--eta", type=float, default=None)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    loaded = load_model(args.ckpt, device=pick_device(args.device))
    sampler = loaded.sampler(args.method, args.steps, args.eta)
    classifier = load_course_classifier(require("hw2_digit_classifier.pth"))
    judge = load_judge()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.jsonl"
    done = {}
    if results_path.exists():
        done = {r["key"]: r for r in map(json.loads, results_path.read_text().splitlines())}
    sampler_name = f"{sampler.method} {sampler.steps if sampler.method == 'ddim' else loaded.schedule.num_timesteps}" + (
        f" eta {sampler.eta:g}" if sampler.method == "ddim" else "")
    labels = graded_labels(args.per_class)
    cfg = loaded.model_config
    x_T = initial_noise(len(labels), (cfg.in_channels, cfg.image_size, cfg.image_size), args.seed)
    for text in args.settings:
        guidance = loaded.guidance(*parse_setting(text))
        key = f"{args.ckpt or 'default'} | {sampler_name} | {guidance} | seed {args.seed} | {args.per_class}"
        if key in done:
            continue
        start = time.perf_counter()
        x0 = sample_digits(loaded, labels, x_T, sampler, guidance, args.seed)
        seconds = time.perf_counter() - start
        images = nhwc_to_nchw(to_images(x0))
        scores = score_digits(images, labels.numpy(), classifier, judge)
        row = {"key": key, "sampler": sampler_name, "guidance": str(guidance), "course_accuracy": scores.overall,
               "judge_accuracy": scores.judge_accuracy, "frechet": scores.frechet, "floor": scores.floor_1000,
               "seconds": seconds, "machine": machine()}
        done[key] = row
        with results_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(f"{row['sampler']}, {row['guidance']}: course {row['course_accuracy']:.2%}, judge {row['judge_accuracy']:.2%}, "
              f"FD {row['frechet']:.3f}, {seconds:.1f} s", flush=True)

    print(f"\nmachine: {machine()}\n")
    print("| sampler | guidance | course accuracy | judge accuracy | judge Fréchet (1,000-image floor) | time |")
    print("|---|---|---|---|---|---|")
    for row in done.values():
        print(f"| {row['sampler']} | {row['guidance']} | {row['course_accuracy']:.2%} | {row['judge_accuracy']:.2%} | "
              f"{row['frechet']:.3f} ({row['floor']:.3f}) | {row['seconds']:.1f} s |")


if __name__ == "__main__":
    main()
