"""The ``diffadapt`` command line: one subcommand family per task.

Families register themselves from small modules and import their heavy dependencies (torch models,
matplotlib, scikit-learn) only when a command runs, so ``diffadapt --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from diffadapt import __version__
from diffadapt.errors import InputError


def build_parser() -> argparse.ArgumentParser:
    from diffadapt.cli import adapt, data, demo, digits, faces

    parser = argparse.ArgumentParser(
        prog="diffadapt",
        description="Class-conditional diffusion, DDIM sampling and domain adaptation on small images.",
    )
    parser.add_argument("--version", action="version", version=f"diffadapt {__version__}")
    families = parser.add_subparsers(dest="family", metavar="COMMAND")
    data.register(families)
    digits.register(families)
    faces.register(families)
    adapt.register(families)
    demo.register(families)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        # A family without its subcommand: show that family's help rather than a traceback.
        (getattr(args, "family_parser", None) or parser).print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return InputError.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
