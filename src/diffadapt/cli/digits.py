"""``diffadapt digits``: the class-conditional DDPM on digit images."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffadapt.apps.digits.generate import GENERATION_BATCH_SIZE
from diffadapt.apps.digits.training import AUTO_RECIPE, DIGIT_RECIPES
from diffadapt.cli.common import (
    add_command,
    add_family,
    add_setting,
    given,
    parse_timestep_interval,
    pick_device,
    seed_number,
    shown_default,
    whole_number,
)
from diffadapt.device import PRECISIONS
from diffadapt.diffusion.sampling import OTHER_METHOD_FALLBACK, SAMPLING_FIELDS, SamplingSettings, check_interval_within
from diffadapt.diffusion.schedule import ScheduleConfig
from diffadapt.diffusion.train import TrainConfig
from diffadapt.diffusion.unet import UNetConfig
from diffadapt.io import SHIPPED

TRAIN_SETTINGS = ("steps", "epochs", "time_limit", "batch_size", "lr", "warmup_steps", "lr_schedule", "ema_decay", "p_uncond",
                  "grad_clip", "seed", "checkpoint_every", "log_every", "precision", "compile", "compile_mode", "weights_dtype")
MODEL_SETTINGS = {"base_channels": "--base-channels", "channel_mults": "--channel-mults", "num_res_blocks": "--res-blocks",
                  "attention_levels": "--attention-levels", "dropout": "--dropout", "patch_size": "--patch-size", "norm_groups": "--norm-groups"}
SCHEDULE_SETTINGS = {"num_timesteps": "--timesteps", "beta_start": "--beta-start", "beta_end": "--beta-end"}


def shipped_defaults() -> dict:
    """The shipped checkpoint's sampling section, for the help texts (a small JSON read; {} if absent)."""
    from diffadapt.diffusion.models import default_digits_checkpoint
    from diffadapt.io import read_json

    try:
        sampling = read_json(default_digits_checkpoint() / "config.json").get("sampling", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return sampling if isinstance(sampling, dict) else {}


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    shipped = shipped_defaults()

    def checkpoint_default(key: str) -> str:
        text = "the checkpoint's"
        if key in shipped:
            value = shipped[key]
            if key == "guidance_interval":  # written as the option reads it
                value = "all" if value is None else ":".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            text += f"; the shipped model's is {shown_default(value)}"
        other = OTHER_METHOD_FALLBACK.get(key)
        return text + (f"; with another --method, {shown_default(other)}" if other is not None else "")

    p.add_argument("--ckpt", default=None,
                   help="run folder of a trained model, or a diffusers folder written by `digits export` (default: the shipped checkpoint)")
    p.add_argument("--seed", type=seed_number, default=0, help="fixes the initial noise and the per-step noise (default: 0)")
    for name in SAMPLING_FIELDS:
        flag = "--" + name.replace("_", "-")
        if name == "guidance_interval":
            add_setting(p, flag, SamplingSettings, name, default_text=checkpoint_default(name), parse=parse_timestep_interval, metavar="LO:HI")
        else:
            metavar = {"guidance": "S", "guidance_high_frequency": "R"}.get(name)
            add_setting(p, flag, SamplingSettings, name, default_text=checkpoint_default(name), metavar=metavar)
    p.add_argument("--batch-size", type=whole_number, default=GENERATION_BATCH_SIZE,
                   help=f"images per forward pass (memory only: results do not depend on it) (default: {GENERATION_BATCH_SIZE})")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="auto: bf16 on CUDA and on CPUs with native bf16, else fp32")


def register(families: argparse._SubParsersAction) -> None:
    commands = add_family(families, "digits", "Class-conditional DDPM with classifier-free guidance on digit images.")

    p = add_command(commands, "train", run_train, "Train a class-conditional DDPM (course layout, npz, release folders or an embedded domain).")
    p.add_argument("--data", default="mnistm", help="source of training images (default: embedded mnistm)")
    p.add_argument("--out", required=True, help="run folder for checkpoints, config, metrics.csv and curves.png")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--stop-after", type=whole_number, default=0, help="end this invocation after N steps; --resume finishes the run")
    p.add_argument("--size", type=whole_number, default=None, help="resize images to SIZE x SIZE (default: as stored)")
    p.add_argument("--recipe", choices=(AUTO_RECIPE, *DIGIT_RECIPES), default=AUTO_RECIPE,
                   help="starting values of a new run, under the options given: standard (the config defaults), or cpu "
                   "(a smaller network at a quarter of the arithmetic an image, for CPUs; prints when it should reach the accuracy measured for it, "
                   "timed on this machine); auto: cpu for a new network on a CPU, standard on a GPU and for --init-from / --resume "
                   f"(default: {AUTO_RECIPE})")
    p.add_argument("--init-from", default=None, metavar="CKPT",
                   help=f"fine-tune: start from a digit checkpoint's weights, network and noise schedule ('{SHIPPED}': the shipped one)")
    for name in TRAIN_SETTINGS:
        add_setting(p, "--" + name.replace("_", "-"), TrainConfig, name)
    for name, flag in SCHEDULE_SETTINGS.items():
        add_setting(p, flag, ScheduleConfig, name)
    for name, flag in MODEL_SETTINGS.items():
        add_setting(p, flag, UNetConfig, name)
    p.add_argument("--tensorboard", default=None, metavar="DIR", help="also log the training scalars for TensorBoard (needs the tensorboard extra)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")

    p = add_command(commands, "generate", run_generate, "Write N images per digit as {digit}_{index:03d}.png (the graded format).")
    p.add_argument("out_dir")
    p.add_argument("--per-class", type=whole_number, default=100)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    add_sampling_options(p)

    p = add_command(commands, "grid", run_grid, "Write a 10x10 grid: rows are digits 0-9, columns are 10 noise inputs.")
    p.add_argument("out_png")
    add_sampling_options(p)

    p = add_command(commands, "reverse", run_reverse, "Write the reverse process of the grid's first image of a digit at six timesteps.")
    p.add_argument("out_png")
    p.add_argument("--digit", type=whole_number, default=0)
    add_sampling_options(p)

    p = add_command(commands, "evaluate", run_evaluate, "Score a folder of generated digits: accuracy, Fréchet distance, accuracy score.")
    p.add_argument("out_dir", help="folder of {digit}_*.png files")
    p.add_argument("--classifier", default=None, help="the course's LeNet weights (Classifier.pth): adds its per-class accuracy")
    p.add_argument("--judge", default=None, help="judge run folder (default: the shipped MNIST-M judge)")
    p.add_argument("--no-judge", action="store_true", help="skip the judge's accuracy and Fréchet distance")
    p.add_argument("--real", default=None, metavar="SRC",
                   help="real labelled digits with train and test (or val) splits, e.g. mnistm28.npz: adds the classification accuracy score")
    p.add_argument("--score-seeds", default="0,1,2", help="seeds of the accuracy score's classifier trainings (default: 0,1,2)")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")

    p = add_command(commands, "train-judge", run_train_judge, "Train our digit judge classifier on a real domain; it supplies the Fréchet features.")
    p.add_argument("--data", required=True, help="real labelled digits with a test split (e.g. mnistm28.npz)")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=whole_number, default=6)
    p.add_argument("--seed", type=seed_number, default=0)
    p.add_argument("--device", default="auto")

    p = add_command(commands, "export", run_export, "Write a digit checkpoint as a diffusers folder (UNet2DModel with class embeddings + scheduler).")
    p.add_argument("out_dir")
    p.add_argument("--ckpt", default=None, help="run folder (default: the shipped checkpoint)")
    p.add_argument("--overwrite", action="store_true")


def run_train(args: argparse.Namespace) -> int:
    from diffadapt.apps.digits.training import train_digits

    result = train_digits(
        args.data, Path(args.out), train=given(args, TRAIN_SETTINGS), schedule={k: getattr(args, k) for k in SCHEDULE_SETTINGS if getattr(args, k) is not None},
        model={k: getattr(args, k) for k in MODEL_SETTINGS if getattr(args, k) is not None}, size=args.size, resume=args.resume,
        stop_after=args.stop_after, device=pick_device(args.device), progress=not args.no_progress, tensorboard=args.tensorboard,
        init_from=args.init_from, recipe=args.recipe, report=print,
    )
    rate = result.images_seen / max(result.train_seconds, 1e-9)
    print(f"trained to step {result.steps}: loss {result.final_loss:.4f}, {result.train_seconds:.1f} s of training "
          f"({rate:,.0f} images/s), compile {result.compile_seconds:.1f} s ({result.compile_mode}); checkpoint, metrics.csv and curves.png in {args.out}")
    return 0


def sampling_setup(args: argparse.Namespace):
    """Load the model and merge the command's sampling flags over the checkpoint's defaults."""
    from diffadapt.diffusion.models import load_model
    from diffadapt.errors import InputError

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")
    loaded = load_model(args.ckpt, device=pick_device(args.device), precision=args.precision)
    check_interval_within(args.guidance_interval, loaded.schedule)
    return (loaded, *loaded.sampling(SamplingSettings(**{name: getattr(args, name) for name in SAMPLING_FIELDS})))


def run_generate(args: argparse.Namespace) -> int:
    import time

    from diffadapt.apps.digits.generate import generate_graded
    from diffadapt.errors import InputError

    if not 1 <= args.per_class <= 999:
        raise InputError(f"--per-class must be in 1..999 (three-digit file index), got {args.per_class}")
    loaded, sampler, guidance = sampling_setup(args)
    start = time.perf_counter()
    forwards = generate_graded(loaded, Path(args.out_dir), args.per_class, sampler, guidance, args.seed, args.batch_size, overwrite=args.overwrite)
    seconds = time.perf_counter() - start
    print(f"wrote {10 * args.per_class} images to {args.out_dir} ({sampler.describe(loaded.schedule)}, guidance {guidance}, "
          f"{forwards} network evaluations per image, seed {args.seed}) in {seconds:.1f} s on {loaded.device.type} "
          f"({'bf16' if loaded.bf16 else 'fp32'})")
    return 0


def run_grid(args: argparse.Namespace) -> int:
    from diffadapt.apps.digits.figures import digit_grid
    from diffadapt.io import check_png_name

    check_png_name(args.out_png, "OUT_PNG")  # before the sampling, not after
    loaded, sampler, guidance = sampling_setup(args)
    path = digit_grid(loaded, sampler, guidance, args.seed, Path(args.out_png))
    print(f"wrote {path}")
    return 0


def run_reverse(args: argparse.Namespace) -> int:
    from diffadapt.apps.digits.figures import reverse_strip
    from diffadapt.errors import InputError
    from diffadapt.io import check_png_name

    if not 0 <= args.digit <= 9:
        raise InputError(f"--digit must be in 0..9, got {args.digit}")
    check_png_name(args.out_png, "OUT_PNG")
    loaded, sampler, guidance = sampling_setup(args)
    path = reverse_strip(loaded, sampler, guidance, args.seed, Path(args.out_png), digit=args.digit)
    print(f"wrote {path}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from diffadapt.apps.digits.scoring import evaluate_folder
    from diffadapt.cli.common import parse_int_list, seed_number
    from diffadapt.errors import InputError
    from diffadapt.evaluate.accuracy_score import MAX_SCORE_SEEDS
    from diffadapt.io import write_json_atomic

    try:
        seeds = [seed_number(str(seed)) for seed in parse_int_list(args.score_seeds)]
    except argparse.ArgumentTypeError as exc:
        raise InputError(f"--score-seeds: {exc}") from None
    if not seeds or len(seeds) > MAX_SCORE_SEEDS:
        raise InputError(f"--score-seeds needs 1 to {MAX_SCORE_SEEDS} seeds")
    scores = evaluate_folder(args.out_dir, classifier=args.classifier, judge=None if args.no_judge else (args.judge or SHIPPED),
                             real=args.real, score_seeds=tuple(seeds))
    print(scores.table())
    if args.json:
        write_json_atomic(args.json, scores.to_dict())
    return 0


def run_train_judge(args: argparse.Namespace) -> int:
    from diffadapt.evaluate.judge import train_judge_from_source

    summary = train_judge_from_source(args.data, Path(args.out), args.epochs, args.seed, pick_device(args.device))
    print(summary)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from diffadapt.apps.digits.export import export_diffusers

    path = export_diffusers(args.ckpt, Path(args.out_dir), overwrite=args.overwrite)
    print(f"wrote the diffusers folder {path} (UNet2DModel with class embeddings, scheduler config, sampling defaults)")
    return 0
