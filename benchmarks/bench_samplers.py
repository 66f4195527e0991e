"""Samplers of the shipped digit model side by side: the graded images of each setting, timed and scored.

    python benchmarks/bench_samplers.py --out runs/samplers [SETTING ...] [--per-class 100] [--score-seeds 0,1,2] [--ckpt RUN]

A SETTING is METHOD:STEPS[:SPACING[:ETA[:GUIDANCE[/SHARE][@LO-HI]]]], e.g. ``dpmpp-2m:10:trailing``,
``ddim:25:leading:1:4`` (the old default: DDIM 25, eta 1, s 4 at every step), ``unipc:8:trailing:0:4@100-499``,
``dpmpp-2m-sde:6:quadratic::3/0.25@0-300`` (frequency-split guidance, high-frequency share 0.25)
or ``default`` (the checkpoint's own sampler and guidance); missing or empty fields are what ``digits generate``
lays over the checkpoint's: its own, but a method other than its own takes eta 0 and guidance at every step, as
does a scale given without a window. Without settings: the old default, the checkpoint's default, and every
sampler (DDIM at eta 0 and 1) at 5 / 10 / 15 / 25 steps with the checkpoint's spacing and scale. Each row: network
evaluations per image, seconds for all images (same process, same threads, one after the other, so ratios are
fair), course accuracy (the course's LeNet, ``hw2_digit_classifier.pth``), judge accuracy and Fréchet distance,
and the classification accuracy score against real MNIST-M (``mnistm28.npz``; its real side is measured once per
seed). Rows are appended to OUT/results.jsonl as they finish; a rerun skips a row already measured with the same
sampler, guidance, image count, seeds and precision.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import machine, print_table, require

from diffadapt.apps.digits.generate import generate_images
from diffadapt.data import read_source
from diffadapt.diffusion.models import load_model
from diffadapt.diffusion.sampling import SamplingSettings, check_interval_within
from diffadapt.evaluate.accuracy_score import classification_accuracy_score, real_baseline, real_reference
from diffadapt.evaluate.generated import score_digits
from diffadapt.evaluate.judge import load_judge
from diffadapt.evaluate.lenet import load_course_classifier
from diffadapt.images import nhwc_to_nchw

OLD_DEFAULT = "ddim:25:leading:1:4"
CHECKPOINT_DEFAULT = "default"  # the checkpoint's own sampler and guidance
GRID = [f"{method}:{steps}{eta}" for steps in (5, 10, 15, 25)
        for method, eta in (("ddim", "::0"), ("ddim", "::1"), ("dpmpp-2m", ""), ("dpmpp-2m-sde", ""), ("unipc", ""))]
DEFAULT_SETTINGS = [OLD_DEFAULT, CHECKPOINT_DEFAULT] + GRID


def parse(setting: str, loaded) -> tuple:
    """The sampler and guidance of a SETTING, as ``digits generate`` would lay them over the checkpoint's."""
    if setting == CHECKPOINT_DEFAULT:
        return loaded.sampling()
    fields = setting.split(":")

    def field(index: int) -> str | None:
        """The field's text; None (the checkpoint's) where it is missing or empty."""
        return fields[index] if len(fields) > index and fields[index] else None

    method, steps = fields[0], int(fields[1])
    spacing = field(2)
    eta = float(field(3)) if field(3) else None
    scale, interval, share = None, None, None
    text = field(4)
    if text and "@" in text:
        text, window = text.split("@")
        interval = tuple(int(v) for v in window.split("-"))
    if text and "/" in text:
        text, share_text = text.split("/")
        share = float(share_text)
    if text:
        scale = float(text)
        interval = interval or "all"  # a scale without a window: every step
    check_interval_within(interval, loaded.schedule)
    return loaded.sampling(SamplingSettings(method=method, steps=steps, eta=eta, spacing=spacing, guidance=scale,
                                            guidance_interval=interval, guidance_high_frequency=share))


# What makes two rows the same measurement. Not the SETTING text: its missing fields are the checkpoint's
# defaults, so the text alone would match a row measured under another default.
RUN_FIELDS = ("ckpt", "sampler", "guidance", "images", "seed", "cas_seeds", "precision")


def run_key(row: dict) -> tuple:
    return tuple(json.dumps(row.get(name)) for name in RUN_FIELDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="*", default=DEFAULT_SETTINGS)
    parser.add_argument("--out", default="runs/samplers")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--score-seeds", default="0,1,2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--ckpt", default=None, help="a digit run folder (default: the shipped checkpoint)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_file = out / "results.jsonl"
    lines = results_file.read_text().splitlines() if results_file.exists() else []
    done = {run_key(row): row for row in map(json.loads, lines)}
    loaded = load_model(args.ckpt, device="cpu", precision=args.precision)
    parsed = {setting: parse(setting, loaded) for setting in args.settings}  # every typo before the first long run
    classifier = load_course_classifier(require("hw2_digit_classifier.pth"))
    judge = load_judge()
    seeds = tuple(int(s) for s in args.score_seeds.split(","))
    reference = real_reference(read_source(str(require("mnistm28.npz")), progress=False))
    labels = torch.arange(10).repeat_interleave(args.per_class)
    real_file = out / f"real_scores_{args.per_class}.json"
    if real_file.exists():
        real_scores = json.loads(real_file.read_text())
    else:
        real_scores = real_baseline(labels, *reference, seeds=seeds)
        real_file.write_text(json.dumps(real_scores))
    precision = "bf16" if loaded.bf16 else "fp32"
    keys = {}
    for setting, (sampler, guidance) in parsed.items():
        run = {"ckpt": args.ckpt, "sampler": sampler.describe(loaded.schedule), "guidance": str(guidance), "images": args.per_class * 10,
               "seed": args.seed, "cas_seeds": list(seeds), "precision": precision}
        keys[setting] = run_key(run)
        if keys[setting] in done:
            continue
        start = time.perf_counter()
        images, labels = generate_images(loaded, args.per_class, sampler, guidance, args.seed, progress=False)
        seconds = time.perf_counter() - start
        tensor = nhwc_to_nchw(images)
        cas = classification_accuracy_score(tensor, labels, *reference, seeds=seeds, real_scores=real_scores)
        scores = score_digits(tensor, labels.numpy(), classifier, judge, cas)
        row = {"setting": setting, **run, "forwards": guidance.forwards(sampler.timesteps(loaded.schedule)), "seconds": seconds,
               "course_accuracy": scores.overall, "judge_accuracy": scores.judge_accuracy, "frechet": scores.frechet,
               "floor": scores.floor_at_n, "cas": sum(cas.generated) / len(seeds), "cas_real": sum(cas.real) / len(seeds),
               "cas_ratio": cas.ratio, "machine": machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability()}
        done[keys[setting]] = row
        with open(results_file, "a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(f"{setting}: {row['forwards']} evals/image, {seconds:.1f} s, course {row['course_accuracy'] * 100:.2f} %, "
              f"FD {row['frechet']:.3f}, CAS ratio {row['cas_ratio']:.3f}", flush=True)
    old = done.get(keys.get(OLD_DEFAULT))
    rows = []
    for setting in args.settings:
        row = done[keys[setting]]
        ratio = f", {row['seconds'] / old['seconds']:.2f}x old" if old else ""
        rows.append((f"{row['sampler']}, {row['guidance']}", f"{row['forwards']} evals, {row['seconds']:.1f} s{ratio}",
                     f"course {row['course_accuracy'] * 100:.2f} %, judge {row['judge_accuracy'] * 100:.1f} %, FD {row['frechet']:.3f}, "
                     f"CAS {row['cas']:.3f} / real {row['cas_real']:.3f} = {row['cas_ratio']:.3f}"))
    print_table(f"{args.ckpt or 'shipped digit model'}, {args.per_class * 10} images, seed {args.seed} ({precision})", rows)


if __name__ == "__main__":
    main()
