"""``diffadapt faces``: sampling pretrained noise-prediction UNets (the course's face UNet, diffusers folders,
our runs), the eta grid and interpolation figures, and training an unconditional face model."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffadapt.apps.faces.training import FACE_TRAIN_DEFAULTS, FaceRunSettings
from diffadapt.cli.common import (
    add_command,
    add_family,
    add_setting,
    given,
    parse_float_list,
    pick_device,
    seed_number,
    shown_default,
    whole_number,
)
from diffadapt.device import PRECISIONS
from diffadapt.diffusion.models import DIGIT_FIGURE_STEPS
from diffadapt.diffusion.noise_model import SAMPLING_BATCH_SIZE
from diffadapt.diffusion.sampler import SamplerConfig
from diffadapt.diffusion.sampling import SamplingSettings
from diffadapt.diffusion.train import TrainConfig
from diffadapt.io import check_png_name
from diffadapt.settings import field_default, short_repr

FACE_RUN_SETTINGS = ("size", "limit", "timesteps", "base_channels")
FACE_TRAIN_SETTINGS = ("steps", "epochs", "time_limit", "batch_size", "lr", "seed", "checkpoint_every", "compile", "compile_mode", "precision")


def add_runtime(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=seed_number, default=0, help="per-step noise of stochastic sampling; the digits' noise with --ckpt (default: 0)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="fp32 (default, as graded), bf16, or auto")


def add_model_source(p: argparse.ArgumentParser) -> None:
    source = p.add_argument_group("model and noise (a face UNet with noise files, or a digit checkpoint with seeded noise)")
    source.add_argument("--unet", default=None, help="course UNet.pt, a diffusers UNet2DModel folder, or a faces run")
    source.add_argument("--noise-dir", default=None, help="folder of .pt noise tensors (with --unet)")
    source.add_argument("--ckpt", default=None, help="a digit run folder, or 'default' for the shipped digit model")
    source.add_argument("--digit", type=whole_number, default=0, help="class to draw with a digit checkpoint (default: 0)")
    add_setting(source, "--guidance", SamplingSettings, metavar="S", help="guidance scale for a digit checkpoint", default_text="the checkpoint's")
    add_setting(p, "--steps", SamplerConfig, default_text=f"{field_default(SamplerConfig, 'steps')} for a face UNet, {DIGIT_FIGURE_STEPS} for a digit "
                "checkpoint (see MODEL_CARD.md)")
    add_runtime(p)


def register(families: argparse._SubParsersAction) -> None:
    commands = add_family(families, "faces", "Sampling pretrained noise-prediction UNets: graded faces, eta grid, interpolation, training.")

    p = add_command(commands, "generate", run_generate, "Sample from each noise file; writes NN.png named after it (min-max normalised as graded).")
    p.add_argument("noise_dir")
    p.add_argument("out_dir")
    p.add_argument("--unet", required=True, help="course UNet.pt, a diffusers UNet2DModel folder, or a faces run")
    for name in ("method", "eta", "steps"):  # the graded setting is SamplerConfig's defaults (course_sampler)
        add_setting(p, "--" + name, SamplerConfig, default_text=f"{shown_default(field_default(SamplerConfig, name))}, as graded")
    p.add_argument("--gt", default=None, help="folder of ground-truth NN.png: print per-image and mean MSE (0..255)")
    p.add_argument("--batch-size", type=whole_number, default=SAMPLING_BATCH_SIZE,
                   help=f"images per forward pass (memory only) (default: {SAMPLING_BATCH_SIZE})")
    p.add_argument("--overwrite", action="store_true")
    add_runtime(p)

    p = add_command(commands, "eta-grid", run_eta_grid, "Rows: DDIM with eta = 0 ... 1; columns: four noises (the report's DDIM figure).")
    p.add_argument("out_png")
    p.add_argument("--etas", type=parse_float_list, default=[0.0, 0.25, 0.5, 0.75, 1.0])
    p.add_argument("--noises", type=whole_number, default=4, help="how many noises (columns) (default: 4)")
    add_model_source(p)

    p = add_command(commands, "interpolate", run_interpolate, "slerp and linear rows between two noises, alpha = 0.0 ... 1.0.")
    p.add_argument("out_png")
    p.add_argument("--alphas", type=parse_float_list, default=[round(0.1 * k, 1) for k in range(11)])
    add_setting(p, "--method", SamplerConfig, default_text="ddim (eta 0)")
    add_model_source(p)

    p = add_command(commands, "train", run_train, "Train an unconditional DDPM on a folder (or .zip) of face images.")
    p.add_argument("image_dir", help="folder or .zip of images (any size; centre-cropped and resized)")
    p.add_argument("--out", required=True)
    for name in FACE_RUN_SETTINGS:
        add_setting(p, "--" + name.replace("_", "-"), FaceRunSettings, name)
    for name in FACE_TRAIN_SETTINGS:  # the face runs' own defaults where they differ from TrainConfig's
        shown = shown_default(FACE_TRAIN_DEFAULTS[name]) if name in FACE_TRAIN_DEFAULTS else None
        add_setting(p, "--" + name.replace("_", "-"), TrainConfig, name, default_text=shown)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--tensorboard", default=None, metavar="DIR", help="also log the training scalars for TensorBoard (needs the tensorboard extra)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")


def figure_inputs(args: argparse.Namespace, count: int):
    """The figure's model, noises, image rule, steps and spacing, from --unet/--noise-dir or --ckpt."""
    from diffadapt.apps.faces.models import digit_figure_inputs, face_figure_inputs
    from diffadapt.errors import InputError

    if not 1 <= count <= 64:
        raise InputError(f"a figure shows 1 to 64 noises, got {count}")
    device = pick_device(args.device)
    if args.ckpt is not None:
        from diffadapt.diffusion.models import load_model

        if not 0 <= args.digit <= 9:
            raise InputError(f"--digit must be in 0..9, got {args.digit}")
        loaded = load_model(None if args.ckpt == "default" else args.ckpt, device=device, precision=args.precision)
        return digit_figure_inputs(loaded, args.digit, count, args.seed, args.guidance, args.steps)
    if args.unet is None or args.noise_dir is None:
        raise InputError("give --unet and --noise-dir (face model) or --ckpt (digit model)")
    return face_figure_inputs(args.unet, args.noise_dir, count, device, args.precision, args.steps)


def run_generate(args: argparse.Namespace) -> int:
    import time

    from diffadapt.apps.faces.models import (
        course_sampler,
        ground_truth_paths,
        load_face_model,
        load_noise_dir,
        mse_against,
        to_graded_images,
    )
    from diffadapt.diffusion.noise_model import sample_batched
    from diffadapt.errors import InputError
    from diffadapt.io import atomic_dir, check_not_an_input, write_png

    device = pick_device(args.device)
    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1, got {args.batch_size}")
    # --overwrite would delete what the command reads along with the folder
    check_not_an_input(args.out_dir, [p for p in (args.noise_dir, args.unet, args.gt) if p], "the output folder", may_lie_inside=True)
    names, noises = load_noise_dir(args.noise_dir)
    gt_paths = ground_truth_paths(args.gt, names) if args.gt else None
    model = load_face_model(args.unet, device, args.precision)
    model.check_noise(noises, args.noise_dir)
    sampler = course_sampler(model, SamplingSettings(method=args.method, steps=args.steps, eta=args.eta))
    start = time.perf_counter()
    with atomic_dir(args.out_dir, overwrite=args.overwrite) as tmp:  # checked before the work, removed if it fails
        images = to_graded_images(sample_batched(model, noises, sampler, seed=args.seed, batch_size=args.batch_size))
        for name, image in zip(names, images):
            write_png(tmp / f"{name}.png", image)
        errors = mse_against(images, gt_paths) if gt_paths is not None else None  # inside: a bad GT leaves no folder
    seconds = time.perf_counter() - start
    print(f"wrote {len(names)} images to {args.out_dir} ({model.name}, {sampler.describe(model.schedule)}) in {seconds:.1f} s on {device.type}")
    if errors is not None:
        for name, error in zip(names, errors):
            print(f"{name}.png  MSE {error:.3f}")
        print(f"mean MSE {sum(errors) / len(errors):.3f}")
    return 0


def run_eta_grid(args: argparse.Namespace) -> int:
    from diffadapt.apps.faces.figures import eta_grid
    from diffadapt.errors import InputError

    if not args.etas or any(not 0 <= e <= 1 for e in args.etas) or len(args.etas) > 16:
        raise InputError(f"--etas: 1 to 16 values in 0..1, got {short_repr(args.etas)}")
    check_png_name(args.out_png, "OUT_PNG")
    f = figure_inputs(args, args.noises)
    path = eta_grid(f.model, f.noises, f.names, f.to_images, Path(args.out_png), etas=args.etas, steps=f.steps, seed=args.seed,
                    title=f"DDIM {f.steps} steps ({f.spacing}), {f.model.name}", spacing=f.spacing)
    print(f"wrote {path}")
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    from diffadapt.apps.faces.figures import interpolation_rows
    from diffadapt.errors import InputError

    if not args.alphas or any(not 0 <= a <= 1 for a in args.alphas) or len(args.alphas) > 32:
        raise InputError(f"--alphas: 1 to 32 values in 0..1, got {short_repr(args.alphas)}")
    check_png_name(args.out_png, "OUT_PNG")
    f = figure_inputs(args, 2)
    method = args.method if args.method is not None else field_default(SamplerConfig, "method")
    path = interpolation_rows(f.model, f.noises[:1], f.noises[1:2], f.to_images, Path(args.out_png), alphas=args.alphas, steps=f.steps,
                              method=method, spacing=f.spacing, title=f"{method} {f.steps} steps ({f.spacing}), {f.model.name}: noise 0 -> noise 1")
    print(f"wrote {path}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from diffadapt.apps.faces.training import train_faces
    from diffadapt.diffusion.train import refuse_resume_overrides

    run_settings = given(args, FACE_RUN_SETTINGS)
    if args.resume:
        refuse_resume_overrides(run_settings, given(args, FACE_TRAIN_SETTINGS))  # by the names given, not all of FaceRunSettings
    result = train_faces(args.image_dir, Path(args.out), FaceRunSettings(**run_settings) if run_settings else None, train=given(args, FACE_TRAIN_SETTINGS),
                         resume=args.resume, device=pick_device(args.device),
                         progress=not args.no_progress, tensorboard=args.tensorboard)
    print(f"trained to step {result.steps}: loss {result.final_loss:.4f} in {result.train_seconds:.1f} s; checkpoint, metrics.csv and curves.png in {args.out}")
    return 0
