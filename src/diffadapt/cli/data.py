"""``diffadapt data``: prepare any source in the course layout, describe a source, preview domains."""

from __future__ import annotations

import argparse

from diffadapt.cli.common import add_command, add_family, finite_float, seed_number, whole_number

MIN_SIZE, MAX_SIZE = 4, 1024  # image sides a prepared folder may have (the course's are 28)
MAX_PREPARED_BYTES = 8 << 30  # the resized images are held in memory before they are written


def register(families: argparse._SubParsersAction) -> None:
    commands = add_family(families, "data", "Read, convert and describe digit data sets.")
    p = add_command(commands, "prepare", run_prepare, "Write any readable source in the course layout (data/*.png, train.csv, val.csv).")
    p.add_argument("source", help="a folder or file in any supported format, or an embedded domain name")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--val-fraction", type=finite_float, default=0.2, help="fraction of train held out as val when the source has no val split")
    p.add_argument("--size", type=whole_number, default=None, help="resize images to SIZE x SIZE, 4..1024 (course: 28)")
    p.add_argument("--channels", type=whole_number, choices=(1, 3), default=None, help="convert to gray (1) or RGB (3)")
    p.add_argument("--seed", type=seed_number, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")

    p = add_command(commands, "info", run_info, "Print counts per split and class, image size and channels.")
    p.add_argument("source")

    p = add_command(commands, "preview", run_preview, "Write a sample grid of domains (default: every embedded domain).")
    p.add_argument("sources", nargs="*", default=None, help="sources to show (default: mnist mnistm usps svhn)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--per-domain", type=whole_number, default=16)
    p.add_argument("--seed", type=seed_number, default=0)


def run_prepare(args: argparse.Namespace) -> int:
    from diffadapt.data.prepare import describe, resize_digitset, with_val_split, write_course_layout
    from diffadapt.data.sources import read_source
    from diffadapt.errors import InputError
    from diffadapt.io import check_not_an_input, check_output_folder

    if not 0.0 <= args.val_fraction < 1.0:
        raise InputError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.size is not None and not MIN_SIZE <= args.size <= MAX_SIZE:
        raise InputError(f"--size must be in {MIN_SIZE}..{MAX_SIZE}, got {args.size}")
    check_output_folder(args.out, args.overwrite)
    check_not_an_input(args.out, [args.source], "--out")
    splits = read_source(args.source, seed=args.seed)
    splits = with_val_split(splits, args.val_fraction, args.seed)
    if args.size is not None:
        count = sum(len(digits) for digits in splits.values())
        needed = count * args.size**2 * (args.channels or max(digits.channels for digits in splits.values()))
        if needed > MAX_PREPARED_BYTES:
            raise InputError(f"--size {args.size}: {count:,} images would take {needed / 2**30:.1f} GiB in memory, more than "
                             f"{MAX_PREPARED_BYTES / 2**30:.0f} GiB; choose a smaller --size", args.source)
    splits = {k: resize_digitset(v, args.channels, args.size) for k, v in splits.items()}
    write_course_layout(splits, args.out, overwrite=args.overwrite)
    print(describe(splits))
    print(f"wrote {args.out}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from diffadapt.data.prepare import describe
    from diffadapt.data.sources import read_source

    print(describe(read_source(args.source)))
    return 0


def run_preview(args: argparse.Namespace) -> int:
    from diffadapt.apps.preview import preview_grid
    from diffadapt.data.embedded import EMBEDDED_DOMAINS
    from diffadapt.data.imageio import IMAGE_SUFFIXES
    from diffadapt.io import check_not_an_input, check_png_name

    sources = args.sources or list(EMBEDDED_DOMAINS)
    check_png_name(args.out, "--out")
    check_not_an_input(args.out, sources, "--out", IMAGE_SUFFIXES)
    path = preview_grid(sources, args.out, args.per_domain, args.seed)
    print(f"wrote {path}")
    return 0
