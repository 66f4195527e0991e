"""``diffadapt adapt``: adaptation methods with source-only and target-only baselines (see diffadapt.adapt)."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffadapt.adapt.config import AdaptConfig, FolderAdaptConfig
from diffadapt.cli.common import add_command, add_family, add_setting, given, parse_int_list, pick_device, seed_number, whole_number
from diffadapt.settings import MAX_RUN_SEEDS, SEED_BOUNDS, check_entries, field_default

# AdaptConfig fields the train command exposes; each option's default and choices come from AdaptConfig.
TRAIN_SETTINGS = ("network", "epochs", "batch_size", "lr", "augment", "frame", "entropy_weight", "reversal_max", "confidence",
                  "unlabelled_weight", "teacher_decay", "align_distribution", "final_weights",
                  "eval_every", "selection", "weight_decay", "target_pool", "instance_norm",
                  "domain_weight", "source_vat_weight", "target_weight", "vat_radius")

FOLDER_ADAPT_SETTINGS = ("method", "steps", "batch_size", "lr", "seed", "proximal_weight")  # FolderAdaptConfig fields, as --adapt-NAME


def register(families: argparse._SubParsersAction) -> None:
    commands = add_family(families, "adapt", "Unsupervised domain adaptation between digit domains (DANN, CDAN+E, FixMatch, VADA, baselines).")

    p = add_command(commands, "train", run_train, "Train one method (or a baseline), one run per seed.")
    p.add_argument("--source", required=True, help="labelled source domain (path or embedded name)")
    p.add_argument("--target", required=True, help="target domain; its labels are read only by --method target and for reporting")
    add_setting(p, "--method", AdaptConfig, required=True, default_text="none, required")
    p.add_argument("--out", required=True, help="run folder; one seed{S}/ inside per seed")
    p.add_argument("--seeds", type=parse_int_list, default=[0], help="comma-separated seeds (default: 0)")
    p.add_argument("--resume", action="store_true",
                   help="keep the seeds already saved in --out by this same command and train the rest (a seed cut off "
                        "mid-training starts again; each seed is deterministic on one device)")
    add_setting(p, "--recipe", AdaptConfig)
    for name in TRAIN_SETTINGS:
        add_setting(p, "--" + name.replace("_", "-"), AdaptConfig, name, default_text="the recipe's")
    p.add_argument("--select-on-val", action="store_true",
                   help="ORACLE, for comparison only: keep the epoch with the best target-val accuracy (reads target labels); "
                        "the same as --selection target-val-oracle")
    p.add_argument("--no-cuda-graphs", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")

    p = add_command(commands, "predict", run_predict, "Write image_name,label for a folder of target images.")
    p.add_argument("image_dir")
    p.add_argument("out_csv")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--ckpt", help="run folder (its first seed is used) or a seed folder")
    which.add_argument("--shipped", choices=("usps", "svhn"), help="the shipped MNIST-M -> TARGET model (MODEL_CARD.md)")
    p.add_argument("--normalise", choices=("target", "folder"), default="target",
                   help="target: the run's target statistics; folder: the predicted images' own (always, with --adapt)")
    p.add_argument("--adapt", action="store_true", help="first adapt the model to the folder's own images, without labels")
    for name in FOLDER_ADAPT_SETTINGS:
        add_setting(p, "--adapt-" + name.replace("_", "-"), FolderAdaptConfig, name, dest="adapt_" + name)
    p.add_argument("--adapt-source", default=None,
                   help="labelled source beside --adapt: fixmatch trains on it, the estimate is refit on its val split (default: the embedded domain of the run's source)")
    p.add_argument("--save-adapted", default=None, metavar="RUN", help="keep the adapted model as a run folder RUN/seed{S}/")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true")

    p = add_command(commands, "calibrate", run_calibrate,
                    "Fit a run's label-free accuracy estimate on its source's val split (for runs saved without one).")
    p.add_argument("run")
    p.add_argument("--source", default=None, help="the labelled source (default: the spec the run was trained from)")

    p = add_command(commands, "table", run_table, "Print and write the report's table (markdown and CSV), mean ± std over seeds.")
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", default=".", help="folder for adaptation_table.md and .csv")

    p = add_command(commands, "tsne", run_tsne, "t-SNE of extractor features on both domains' val images, by class and by domain.")
    p.add_argument("run")
    p.add_argument("--out", default=None, help="folder for the two figures (default: the run's seed folder)")
    p.add_argument("--per-domain", type=whole_number, default=2000, help="val images per domain (0: all)")
    p.add_argument("--seed", type=seed_number, default=0)


def run_train(args: argparse.Namespace) -> int:
    from diffadapt.adapt.config import preset
    from diffadapt.apps.adaptation.runs import check_free, load_pair, pair_name, train_runs

    overrides = given(args, TRAIN_SETTINGS)
    if args.select_on_val:
        overrides["selection"] = "target-val-oracle"
    if args.no_cuda_graphs:
        overrides["cuda_graphs"] = False
    config = preset(args.recipe or field_default(AdaptConfig, "recipe"), args.method, **overrides)
    check_entries("--seeds", args.seeds, {"count": (1, MAX_RUN_SEEDS), "each": SEED_BOUNDS})  # the report's [adapt] seeds rule
    out = Path(args.out)
    check_free(out, args.seeds, args.resume)
    device = pick_device(args.device)
    source, target, config = load_pair(args.source, args.target, config)
    boxes = "".join(f", {name} digits in a {box}-pixel box" for name, box in ((source.domain, config.source_box), (target.domain, config.target_box)) if box)
    print(f"{pair_name(source, target)}: {len(source.train)} train / {len(source.val)} val -> {len(target.train)} train / "
          f"{len(target.val)} val, method {config.method}, recipe {config.recipe}, selection {config.selection}{boxes}, device {device.type}")
    train_runs(args.source, args.target, config, out, args.seeds, device, progress=not args.no_progress, pair=(source, target, config),
               resume=args.resume)
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from diffadapt.apps.adaptation.predict import predict_folder
    from diffadapt.apps.adaptation.runs import shipped_model
    from diffadapt.errors import InputError

    ckpt = args.ckpt if args.ckpt else shipped_model(args.shipped)
    settings = {name: getattr(args, "adapt_" + name) for name in FOLDER_ADAPT_SETTINGS if getattr(args, "adapt_" + name) is not None}
    if not args.adapt and (settings or args.adapt_source or args.save_adapted):
        raise InputError("--adapt-* options and --save-adapted need --adapt")
    adapt = FolderAdaptConfig(**settings) if args.adapt else None
    prediction = predict_folder(args.image_dir, args.out_csv, ckpt, args.normalise, adapt, args.adapt_source, args.save_adapted,
                                pick_device(args.device), progress=not args.no_progress)
    adapted = f", adapted to the folder in {prediction.adapt_seconds:.1f} s" if prediction.adapted else ""
    saved = f"; adapted model kept in {prediction.saved_run}" if prediction.saved_run else ""
    print(f"wrote {prediction.rows} predictions to {args.out_csv}{adapted}{saved}")
    print(prediction.summary())
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from diffadapt.apps.adaptation.runs import recalibrate

    for folder, calibration in recalibrate(args.run, args.source):
        print(f"{folder}: ATC threshold {calibration.threshold:.4f} on {calibration.images} {calibration.fit_on} images "
              f"(accuracy {calibration.source_val_accuracy:.4f})")
    return 0


def run_table(args: argparse.Namespace) -> int:
    from diffadapt.apps.adaptation.table import write_table

    markdown, md_path, csv_path = write_table(args.runs, args.out)
    print(markdown, end="")
    print(f"wrote {md_path} and {csv_path}")
    return 0


def run_tsne(args: argparse.Namespace) -> int:
    import time

    from diffadapt.apps.adaptation.runs import load_run
    from diffadapt.apps.adaptation.tsne import MAX_TSNE_PER_DOMAIN, tsne_figures
    from diffadapt.errors import InputError

    if args.per_domain < 0 or args.per_domain > MAX_TSNE_PER_DOMAIN:
        raise InputError(f"--per-domain must be in 0..{MAX_TSNE_PER_DOMAIN}, got {args.per_domain}")
    run = load_run(args.run)
    start = time.perf_counter()
    paths = tsne_figures(run, Path(args.out) if args.out else run.path, args.per_domain, args.seed)
    print(f"wrote {paths[0]} and {paths[1]} in {time.perf_counter() - start:.1f} s")
    return 0
