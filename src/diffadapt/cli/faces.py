"""``diffadapt faces``: DDIM with a pretrained face UNet (the course's, diffusers', or ours)."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffadapt.cli.common import add_command, add_family, parse_float_list, pick_device


def add_model_source(p: argparse.ArgumentParser) -> None:
    source = p.add_argument_group("model and noise (a face UNet with noise files, or a digit checkpoint with seeded noise)")
    source.add_argument("--unet", default=None, help="course UNet.pt, a diffusers UNet2DModel folder, or a faces run")
    source.add_argument("--noise-dir", default=None, help="folder of .pt noise tensors (with --unet)")
    source.add_argument("--ckpt", default=None, help="a digit run folder, or 'default' for the shipped digit model")
    source.add_argument("--digit", type=int, default=0, help="class to draw with a digit checkpoint")
    source.add_argument("--guidance", type=float, default=None, help="guidance scale for a digit checkpoint")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32")


def register(families: argparse._SubParsersAction) -> None:
    commands = add_family(families, "faces", "DDIM sampling of pretrained noise-prediction UNets: graded faces, eta grid, interpolation.")

    p = add_command(commands, "generate", run_generate, "DDIM from each noise file; writes NN.png named after it (min-max normalised as graded).")
    p.add_argument("noise_dir")
    p.add_argument("out_dir")
    p.add_argument("--unet", required=True, help="course UNet.pt, a diffusers UNet2DModel folder, or a faces run")
    p.add_argument("--eta", type=float, default=0.0)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--gt", default=None, help="folder of ground-truth NN.png: print per-image and mean MSE (0..255)")
    p.add_argument("--seed", type=int, default=0, help="per-step noise when eta > 0")
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default="fp32")
    p.add_argument("--overwrite", action="store_true")

    p = add_command(commands, "eta-grid", run_eta_grid, "Rows eta = 0 ... 1, columns four noises: the report's DDIM figure.")
    p.add_argument("out_png")
    p.add_argument("--etas", type=parse_float_list, default=[0.0, 0.25, 0.5, 0.75, 1.0])
    p.add_argument("--noises", type=int, default=4, help="how many noises (columns)")
    add_model_source(p)

    p = add_command(commands, "interpolate", run_interpolate, "slerp and linear rows between two noises, alpha = 0.0 ... 1.0.")
    p.add_argument("out_png")
    p.add_argument("--alphas", type=parse_float_list, default=[round(0.1 * k, 1) for k in range(11)])
    add_model_source(p)

    p = add_command(commands, "train", run_train, "Train an unconditional DDPM on a folder (or .zip) of face images.")
    p.add_argument("image_dir", help="folder or .zip of images (any size; centre-cropped and resized)")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--limit", type=int, default=0, help="use only the first N images")
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--epochs", type=float, default=50.0)
    p.add_argument("--time-limit", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--timesteps", type=int, default=1000)
    p.add_argument("--base-channels", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")


def model_and_noises(args: argparse.Namespace, count: int):
    """(NoiseModel, noises (count, C, H, W), column names, image rule) from --unet/--noise-dir or --ckpt."""
    from diffadapt.apps.faces.models import digit_noise_model, load_face_model, load_noise_dir, to_graded_images
    from diffadapt.errors import InputError

    device = pick_device(args.device)
    if args.ckpt is not None:
        from diffadapt.apps.digits.generate import initial_noise, to_images
        from diffadapt.diffusion.models import load_model

        if not 0 <= args.digit <= 9:
            raise InputError(f"--digit must be in 0..9, got {args.digit}")
        loaded = load_model(None if args.ckpt == "default" else args.ckpt, device=device, precision=args.precision)
        cfg = loaded.model_config
        noises = initial_noise(count, (cfg.in_channels, cfg.image_size, cfg.image_size), args.seed)
        return digit_noise_model(loaded, args.digit, loaded.guidance(args.guidance)), noises, [f"z{i}" for i in range(count)], to_images
    if args.unet is None or args.noise_dir is None:
        raise InputError("give --unet and --noise-dir (face model) or --ckpt (digit model)")
    model = load_face_model(args.unet, device, args.precision)
    names, noises = load_noise_dir(args.noise_dir)
    if len(noises) < count:
        raise InputError(f"needs {count} noise files, found {len(noises)}", args.noise_dir)
    return model, noises[:count], names[:count], to_graded_images


def run_generate(args: argparse.Namespace) -> int:
    import time

    from diffadapt.apps.faces.models import ddim_faces, load_face_model, load_noise_dir, mse_against, to_graded_images
    from diffadapt.errors import InputError
    from diffadapt.io import atomic_dir, write_png

    device = pick_device(args.device)
    names, noises = load_noise_dir(args.noise_dir)
    gt_paths = None
    if args.gt:
        gt_paths = [Path(args.gt) / f"{name}.png" for name in names]
        missing = [p for p in gt_paths if not p.is_file()]
        if missing:
            raise InputError("ground-truth image for a noise file is missing", missing[0])
    model = load_face_model(args.unet, device, args.precision)
    start = time.perf_counter()
    outputs = ddim_faces(model, noises, steps=args.steps, eta=args.eta, seed=args.seed, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    images = to_graded_images(outputs)
    with atomic_dir(args.out_dir, overwrite=args.overwrite) as tmp:
        for name, image in zip(names, images):
            write_png(tmp / f"{name}.png", image)
    print(f"wrote {len(names)} images to {args.out_dir} ({model.name}, DDIM {args.steps} steps, eta {args.eta:g}) in {seconds:.1f} s on {device.type}")
    if gt_paths is not None:
        errors = mse_against(images, gt_paths)
        for name, error in zip(names, errors):
            print(f"{name}.png  MSE {error:.3f}")
        print(f"mean MSE {sum(errors) / len(errors):.3f}")
    return 0


def run_eta_grid(args: argparse.Namespace) -> int:
    from diffadapt.apps.faces.figures import eta_grid

    model, noises, names, rule = model_and_noises(args, args.noises)
    path = eta_grid(model, noises, names, rule, Path(args.out_png), etas=args.etas, steps=args.steps, seed=args.seed,
                    title=f"DDIM {args.steps} steps, {model.name}")
    print(f"wrote {path}")
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    from diffadapt.apps.faces.figures import interpolation_rows

    model, noises, _, rule = model_and_noises(args, 2)
    path = interpolation_rows(model, noises[:1], noises[1:2], rule, Path(args.out_png), alphas=args.alphas, steps=args.steps,
                              title=f"DDIM {args.steps} steps, {model.name}: noise 0 -> noise 1")
    print(f"wrote {path}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from diffadapt.data.face_images import read_face_images
    from diffadapt.data.memory import TensorImages
    from diffadapt.diffusion.checkpoint import FACES_KIND
    from diffadapt.diffusion.schedule import ScheduleConfig
    from diffadapt.diffusion.train import DataInfo, TrainConfig, resume_configs, train_diffusion
    from diffadapt.diffusion.unet import UNetConfig

    out = Path(args.out)
    device = pick_device(args.device)
    if args.resume:
        config, model_config, schedule_config, train_config = resume_configs(out)
        source, size, limit = config["data"]["source"], config["data"]["size"], config["data"]["extra"].get("limit", 0)
    else:
        source, size, limit = args.image_dir, args.size, args.limit
        levels = (1, 2, 2, 2) if size >= 64 else (1, 2, 2)
        model_config = UNetConfig(
            image_size=size, in_channels=3, base_channels=args.base_channels, channel_mults=levels, num_res_blocks=2,
            attention_levels=(len(levels) - 2,), num_classes=None, norm_groups=32,
        )
        schedule_config = ScheduleConfig(args.timesteps, 1e-4, 0.02)
        train_config = TrainConfig(
            steps=args.steps, epochs=args.epochs, time_limit=args.time_limit, batch_size=args.batch_size, lr=args.lr,
            p_uncond=0.0, seed=args.seed, checkpoint_every=args.checkpoint_every, compile=args.compile,
        )
    images = read_face_images(source, size, limit)
    import torch

    data = TensorImages(nhwc_to_nchw(images), torch.full((len(images),), -1), "faces")
    info = DataInfo(source=str(source), domain="faces", channels=3, size=size, num_images=len(data), extra={"limit": limit})
    result = train_diffusion(out, data, model_config, schedule_config, train_config, info, FACES_KIND,
                             resume=args.resume, device=device, progress=not args.no_progress)
    print(f"trained to step {result.steps}: loss {result.final_loss:.4f} in {result.train_seconds:.1f} s; checkpoint in {out}")
    return 0
