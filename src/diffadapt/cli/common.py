"""Helpers shared by the command families."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from diffadapt.device import pick_device  # noqa: F401  (re-exported for the command families)


def add_family(families: argparse._SubParsersAction, name: str, help_text: str) -> argparse._SubParsersAction:
    family = families.add_parser(name, help=help_text, description=help_text)
    family.set_defaults(family_parser=family)
    return family.add_subparsers(dest="command", metavar="SUBCOMMAND")


def add_command(
    commands: argparse._SubParsersAction, name: str, handler: Callable[[argparse.Namespace], int | None], help_text: str
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def parse_int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def parse_timestep_interval(text: str) -> tuple[int, int] | str:
    """``LO:HI`` (0-based timesteps, inclusive) or ``all``."""
    if text.strip().lower() == "all":
        return "all"
    try:
        lo, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO:HI (two whole numbers) or all, got {text!r}") from None
    return lo, hi


def parse_float_list(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
