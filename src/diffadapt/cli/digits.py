"""``diffadapt digits``: the class-conditional DDPM on digit images."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from diffadapt.cli.common import add_command, add_family, parse_int_list, parse_timestep_interval, pick_device


def add_sampling_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", default=None, help="run folder of a trained model (default: the shipped checkpoint)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--method", choices=("ddpm", "ddim"), default=None, help="default: the checkpoint's choice")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the checkpoint's choice)")
    p.add_argument("--eta", type=float, default=None, help="DDIM eta (default 0)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale s (s = 1 + w); default: the checkpoint's choice")
    p.add_argument("--guidance-interval", type=parse_timestep_interval, default=None, metavar="LO:HI",
                   help="apply guidance only at timesteps LO..HI (0-based, inclusive), the conditional model elsewhere; "
                   "'all' for every step; default: the checkpoint's choice")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")


def register(families: argparse._SubParsersAction) -> None:
    commands = add_family(families, "digits", "Class-conditional DDPM with classifier-free guidance on digit images.")

    p = add_command(commands, "train", run_train, "Train a class-conditional DDPM (course layout, npz, release folders or an embedded domain).")
    p.add_argument("--data", default="mnistm", help="source of training images (default: embedded mnistm)")
    p.add_argument("--out", required=True, help="run folder for checkpoints and config")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    p.add_argument("--steps", type=int, default=0, help="optimisation steps (default: from --epochs)")
    p.add_argument("--epochs", type=float, default=20.0)
    p.add_argument("--time-limit", type=float, default=0.0, help="stop after this many seconds of training")
    p.add_argument("--stop-after", type=int, default=0, help="end this invocation after N steps; --resume finishes the run")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant")
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--p-uncond", type=float, default=0.1, help="label dropout probability for guidance")
    p.add_argument("--timesteps", type=int, default=500, help="T of the linear schedule (report: 500)")
    p.add_argument("--beta-start", type=float, default=1e-4)
    p.add_argument("--beta-end", type=float, default=0.02)
    p.add_argument("--base-channels", type=int, default=32)
    p.add_argument("--channel-mults", type=parse_int_list, default=[1, 2, 4])
    p.add_argument("--res-blocks", type=int, default=2)
    p.add_argument("--attention-levels", type=parse_int_list, default=[2])
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--patch-size", type=int, default=1,
                   help="fold p x p pixel patches into channels (2: a 28x28 image runs at 14x14 and 7x7, wider; suits GPUs)")
    p.add_argument("--size", type=int, default=None, help="resize images (default: as stored)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    p.add_argument("--compile-mode", choices=("default", "reduce-overhead", "max-autotune"), default="default",
                   help="torch.compile mode with --compile; reduce-overhead replays CUDA graphs")
    p.add_argument("--weights-dtype", choices=("float32", "float16", "bfloat16"), default="float32")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")

    p = add_command(commands, "generate", run_generate, "Write N images per digit as {digit}_{index:03d}.png (the graded format).")
    p.add_argument("out_dir")
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    add_sampling_options(p)

    p = add_command(commands, "grid", run_grid, "Write a 10x10 grid: rows are digits 0-9, columns are 10 noise inputs.")
    p.add_argument("out_png")
    add_sampling_options(p)

    p = add_command(commands, "reverse", run_reverse, "Write the reverse process of the grid's first '0' at six timesteps.")
    p.add_argument("out_png")
    p.add_argument("--digit", type=int, default=0)
    add_sampling_options(p)

    p = add_command(commands, "evaluate", run_evaluate, "Score a folder of generated digits: per-class accuracy and judge Fréchet distance.")
    p.add_argument("out_dir", help="folder of {digit}_*.png files")
    p.add_argument("--classifier", required=True, help="the course's LeNet weights (Classifier.pth)")
    p.add_argument("--judge", default=None, help="judge run folder (default: the shipped MNIST-M judge)")
    p.add_argument("--no-judge", action="store_true", help="course accuracy only")
    p.add_argument("--json", default=None, help="also write the scores to this JSON file")

    p = add_command(commands, "train-judge", run_train_judge, "Train our digit judge classifier on a real domain; it supplies the Fréchet features.")
    p.add_argument("--data", required=True, help="real labelled digits with a test split (e.g. mnistm28.npz)")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")


def run_train(args: argparse.Namespace) -> int:
    from diffadapt.data import TensorImages, read_source
    from diffadapt.data.sources import labelled_train
    from diffadapt.diffusion.checkpoint import DIGITS_KIND
    from diffadapt.diffusion.schedule import ScheduleConfig
    from diffadapt.diffusion.train import DataInfo, TrainConfig, resume_configs, train_diffusion
    from diffadapt.diffusion.unet import UNetConfig
    from diffadapt.errors import InputError

    out = Path(args.out)
    if args.resume:
        config, model_config, schedule_config, train_config = resume_configs(out)
        data_spec = config["data"]["source"]
    else:
        if (out / "config.json").exists():
            raise InputError("run folder already holds a run; pass --resume to continue it or choose another --out", out)
        data_spec = args.data
        train_config = TrainConfig(
            steps=args.steps, epochs=args.epochs, time_limit=args.time_limit, batch_size=args.batch_size, lr=args.lr,
            warmup_steps=args.warmup_steps, lr_schedule=args.lr_schedule, ema_decay=args.ema_decay,
            p_uncond=args.p_uncond, seed=args.seed, checkpoint_every=args.checkpoint_every,
            precision=args.precision, compile=args.compile, compile_mode=args.compile_mode, weights_dtype=args.weights_dtype,
        )
        schedule_config = ScheduleConfig(args.timesteps, args.beta_start, args.beta_end)
    # A generative model has no use for a val split: it trains on the whole train split.
    train = labelled_train(read_source(data_spec, seed=0))
    if not train.labelled:
        raise InputError("training a conditional model needs labelled images", data_spec)
    if not args.resume:
        try:
            model_config = UNetConfig(
                image_size=args.size or train.size[0], in_channels=train.channels, base_channels=args.base_channels,
                channel_mults=tuple(args.channel_mults), num_res_blocks=args.res_blocks,
                attention_levels=tuple(args.attention_levels), num_classes=10, dropout=args.dropout, patch_size=args.patch_size,
            )
        except ValueError as exc:
            raise InputError(f"bad model settings: {exc}") from None
    device = pick_device(args.device)
    data = TensorImages.from_digitset(train, size=model_config.image_size, device=device)
    info = DataInfo(source=str(data_spec), domain=train.domain, channels=data.channels, size=model_config.image_size, num_images=len(data))
    result = train_diffusion(
        out, data, model_config, schedule_config, train_config, info, DIGITS_KIND,
        resume=args.resume, device=device, progress=not args.no_progress, stop_after=args.stop_after,
    )
    rate = result.images_seen / max(result.train_seconds, 1e-9)
    print(f"trained to step {result.steps}: loss {result.final_loss:.4f}, {result.train_seconds:.1f} s of training "
          f"({rate:,.0f} images/s), compile {result.compile_seconds:.1f} s; checkpoint in {out}")
    return 0


def sampling_setup(args: argparse.Namespace):
    """Load the model and merge the command's sampling flags over the checkpoint's defaults."""
    from diffadapt.diffusion.models import load_model
    from diffadapt.errors import InputError

    loaded = load_model(args.ckpt, device=pick_device(args.device), precision=args.precision)
    sampler = loaded.sampler(args.method, args.steps, args.eta)
    if sampler.method == "ddim" and not 1 <= sampler.steps <= loaded.schedule.num_timesteps:
        raise InputError(f"--steps must be in 1..{loaded.schedule.num_timesteps}, got {sampler.steps}")
    if args.batch_size < 1:
        raise InputError("--batch-size must be positive")
    return loaded, sampler, loaded.guidance(args.guidance, args.guidance_interval)


def run_generate(args: argparse.Namespace) -> int:
    import time

    from diffadapt.apps.digits.generate import graded_labels, graded_names, initial_noise, sample_digits, to_images, write_graded_folder
    from diffadapt.errors import InputError

    if not 1 <= args.per_class <= 999:
        raise InputError(f"--per-class must be in 1..999 (three-digit file index), got {args.per_class}")
    loaded, sampler, guidance = sampling_setup(args)
    labels = graded_labels(args.per_class)
    cfg = loaded.model_config
    x_T = initial_noise(len(labels), (cfg.in_channels, cfg.image_size, cfg.image_size), args.seed)
    start = time.perf_counter()
    x0 = sample_digits(loaded, labels, x_T, sampler, guidance, args.seed, args.batch_size)
    seconds = time.perf_counter() - start
    write_graded_folder(Path(args.out_dir), to_images(x0), graded_names(args.per_class), overwrite=args.overwrite)
    steps = loaded.schedule.num_timesteps if sampler.method == "ddpm" else sampler.steps
    print(f"wrote {len(labels)} images to {args.out_dir} ({sampler.method}, {steps} steps, guidance {guidance}, "
          f"seed {args.seed}) in {seconds:.1f} s on {loaded.device.type}")
    return 0


def run_grid(args: argparse.Namespace) -> int:
    from diffadapt.apps.digits.figures import digit_grid

    loaded, sampler, guidance = sampling_setup(args)
    path = digit_grid(loaded, sampler, guidance, args.seed, Path(args.out_png))
    print(f"wrote {path}")
    return 0


def run_reverse(args: argparse.Namespace) -> int:
    from diffadapt.apps.digits.figures import reverse_strip
    from diffadapt.errors import InputError

    if not 0 <= args.digit <= 9:
        raise InputError(f"--digit must be in 0..9, got {args.digit}")
    loaded, sampler, guidance = sampling_setup(args)
    path = reverse_strip(loaded, sampler, guidance, args.seed, Path(args.out_png), digit=args.digit)
    print(f"wrote {path}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from diffadapt.evaluate.generated import read_generated_folder, score_digits
    from diffadapt.evaluate.judge import load_judge
    from diffadapt.evaluate.lenet import load_course_classifier
    from diffadapt.io import write_text_atomic

    classifier = load_course_classifier(args.classifier)
    judge = None if args.no_judge else load_judge(args.judge)
    images, labels, _ = read_generated_folder(args.out_dir)
    scores = score_digits(images, labels, classifier, judge)
    print(scores.table())
    if args.json:
        write_text_atomic(args.json, json.dumps(scores.to_dict(), indent=2) + "\n")
    return 0


def run_train_judge(args: argparse.Namespace) -> int:
    import time

    from diffadapt.data import TensorImages, read_source
    from diffadapt.errors import InputError
    from diffadapt.evaluate.judge import JudgeTrainConfig, judge_features, reference_statistics, save_judge, train_judge

    splits = read_source(args.data)
    if "train" not in splits or "test" not in splits:
        raise InputError("the judge needs a source with train and test splits (its test split is the real reference)", args.data)
    device = pick_device(args.device)
    train = TensorImages.from_digitset(splits["train"], channels=3, size=28)
    test = TensorImages.from_digitset(splits["test"], channels=3, size=28)
    config = JudgeTrainConfig(epochs=args.epochs, seed=args.seed)
    start = time.perf_counter()
    model = train_judge(train.images, train.labels, config, device)
    model = model.cpu()
    _, predictions = judge_features(model, test.images)
    accuracy = float((predictions == test.labels.numpy()).mean())
    stats = reference_statistics(model, test.images, seed=args.seed)
    info = {
        "data": str(args.data), "domain": splits["train"].domain, "num_train": len(train), "num_test": len(test),
        "test_accuracy": accuracy, "train_config": config.__dict__, "train_seconds": time.perf_counter() - start,
        "device": device.type,
    }
    save_judge(Path(args.out), model, stats, info)
    print(f"judge test accuracy {accuracy * 100:.2f}% on {len(test)} real {splits['train'].domain} test images; "
          f"floors: halves {stats['floor_halves']:.3f}, 1000-vs-rest {stats['floor_1000']:.3f}; saved to {args.out}")
    return 0
