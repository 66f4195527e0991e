"""``diffadapt adapt``: DANN with source-only and target-only baselines (see diffadapt.adapt)."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffadapt.adapt.config import FRAMES, MODES, RECIPES
from diffadapt.cli.common import add_command, add_family, parse_int_list, pick_device


def register(families: argparse._SubParsersAction) -> None:
    commands = add_family(families, "adapt", "Unsupervised domain adaptation between digit domains (DANN, baselines).")

    p = add_command(commands, "train", run_train, "Train in one mode (source, dann, target), one run per seed.")
    p.add_argument("--source", required=True, help="labelled source domain (path or embedded name)")
    p.add_argument("--target", required=True, help="target domain; its labels are only used in --mode target and for reporting")
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--out", required=True, help="run folder; one seed{S}/ inside per seed")
    p.add_argument("--seeds", type=parse_int_list, default=[0])
    p.add_argument("--recipe", choices=RECIPES, default="report",
                   help="report: the founding report's network and schedule; ours: matched digit height, augmentation, entropy")
    p.add_argument("--network", choices=("report", "lenet", "wide"), default=None)
    p.add_argument("--epochs", type=int, default=None, help="default 100")
    p.add_argument("--batch-size", type=int, default=None, help="default 512")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--frame", choices=FRAMES, default=None,
                   help="fill: every domain stretched to 28x28 (report); match: digits brought to one height (ours)")
    p.add_argument("--entropy-weight", type=float, default=None)
    p.add_argument("--eval-every", type=int, default=None, help="report target-val accuracy every N epochs (never used to choose)")
    p.add_argument("--select-on-val", action="store_true", help="keep the epoch with the best target-val accuracy (uses target labels!)")
    p.add_argument("--no-cuda-graphs", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")

    p = add_command(commands, "predict", run_predict, "Write image_name,label for a folder of target images.")
    p.add_argument("image_dir")
    p.add_argument("out_csv")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--ckpt", help="run folder (its first seed is used) or a seed folder")
    which.add_argument("--shipped", choices=("usps", "svhn"), help="the shipped MNIST-M -> TARGET DANN model")
    p.add_argument("--normalise", choices=("target", "folder"), default="target",
                   help="target: the run's target statistics; folder: the predicted images' own")

    p = add_command(commands, "table", run_table, "Print and write the report's table (markdown and CSV), mean ± std over seeds.")
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", default=".", help="folder for adaptation_table.md and .csv")

    p = add_command(commands, "tsne", run_tsne, "t-SNE of extractor features on both domains' val images, by class and by domain.")
    p.add_argument("run")
    p.add_argument("--out", default=None, help="folder for the two figures (default: the run's seed folder)")
    p.add_argument("--per-domain", type=int, default=2000, help="val images per domain (0: all)")
    p.add_argument("--seed", type=int, default=0)


def run_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from diffadapt.adapt.config import preset
    from diffadapt.adapt.runs import load_pair, save_run
    from diffadapt.adapt.trainer import train_adaptation
    from diffadapt.errors import InputError

    out = Path(args.out)
    overrides = dict(network=args.network, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, augment=args.augment,
                     entropy_weight=args.entropy_weight, eval_every=args.eval_every, frame=args.frame)
    config = preset(args.recipe, args.mode, **overrides)
    config = replace(config, select_on_val=args.select_on_val, cuda_graphs=not args.no_cuda_graphs)
    if config.select_on_val and config.eval_every <= 0:
        raise InputError("--select-on-val needs --eval-every N")
    existing = [s for s in args.seeds if (out / f"seed{s}" / "config.json").exists()]
    if existing:
        raise InputError(f"seed{existing[0]} already trained here; choose another --out", out)
    device = pick_device(args.device)
    source, target, config = load_pair(args.source, args.target, config)
    boxes = "".join(f", {name} digits in a {box}-pixel box" for name, box in ((source.domain, config.source_box), (target.domain, config.target_box)) if box)
    print(f"{source.domain} ({len(source.train)} train / {len(source.val)} val) -> {target.domain} "
          f"({len(target.train)} train / {len(target.val)} val), mode {config.mode}, recipe {config.recipe}{boxes}, device {device.type}")
    for seed in args.seeds:
        seeded = replace(config, seed=seed)
        try:
            result = train_adaptation(seeded, source.train, source.val, target.train, target.val, device, progress=not args.no_progress)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        save_run(out / f"seed{seed}", seeded, source, target, result, device.type)
        print(f"seed {seed}: target val accuracy {result.target_val_accuracy:.4f}, source val {result.source_val_accuracy:.4f}, "
              f"{result.train_seconds:.1f} s ({result.steps} steps{', CUDA graph' if result.cuda_graph else ''})")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from diffadapt.adapt.predict import predict_folder
    from diffadapt.adapt.runs import shipped_model

    ckpt = args.ckpt if args.ckpt else shipped_model(args.shipped)
    rows = predict_folder(args.image_dir, args.out_csv, ckpt, args.normalise)
    print(f"wrote {rows} predictions to {args.out_csv}")
    return 0


def run_table(args: argparse.Namespace) -> int:
    from diffadapt.adapt.table import write_table

    markdown, md_path, csv_path = write_table(args.runs, args.out)
    print(markdown, end="")
    print(f"wrote {md_path} and {csv_path}")
    return 0


def run_tsne(args: argparse.Namespace) -> int:
    import time

    from diffadapt.adapt.runs import load_run
    from diffadapt.adapt.tsne import tsne_figures

    run = load_run(args.run)
    start = time.perf_counter()
    paths = tsne_figures(run, Path(args.out) if args.out else run.path, args.per_domain, args.seed)
    print(f"wrote {paths[0]} and {paths[1]} in {time.perf_counter() - start:.1f} s")
    return 0
