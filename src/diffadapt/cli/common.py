"""Helpers shared by the command families.

Options that set a config field are declared with :func:`add_setting`, which takes the field's default,
choices and help from the config dataclass (the single source of both); such options default to None
("not given"), so a checkpoint's or a recipe's own value applies unless the user overrides it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, get_args, get_origin

from diffadapt.device import pick_device  # noqa: F401  (re-exported for the command families)
from diffadapt.settings import SEED_BOUNDS, choices_of, field_annotation, field_default, field_help


def add_family(families: argparse._SubParsersAction, name: str, help_text: str) -> argparse._SubParsersAction:
    family = families.add_parser(name, help=help_text, description=help_text)
    family.set_defaults(family_parser=family)
    return family.add_subparsers(dest="command", metavar="SUBCOMMAND")


def add_command(
    commands: argparse._SubParsersAction, name: str, handler: Callable[[argparse.Namespace], int | None], help_text: str
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler, command_parser=parser)
    return parser


def finite_float(text: str) -> float:
    """A float that is a real number (argparse's float accepts nan and inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def seed_number(text: str) -> int:
    """A seed: a whole number in 0 .. 2^31 - 1."""
    value = whole_number(text)
    if not SEED_BOUNDS["at_least"] <= value < SEED_BOUNDS["below"]:
        raise argparse.ArgumentTypeError(f"expected a seed in {SEED_BOUNDS['at_least']}..{SEED_BOUNDS['below'] - 1}, got {text!r}")
    return value


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _list_items(text: str) -> list[str]:
    """The items of a comma-separated list; blank text is the empty list, a blank item (``1,,2``) an error."""
    if not text.strip():
        return []
    items = text.split(",")
    if any(not item.strip() for item in items):
        raise argparse.ArgumentTypeError(f"empty item in the comma-separated list {text!r}")
    return items


def parse_int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in _list_items(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None


def parse_float_list(text: str) -> list[float]:
    values = [finite_float(v) for v in _list_items(text)]
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def parse_timestep_interval(text: str) -> tuple[int, int] | str:
    """``LO:HI`` (0-based timesteps, inclusive) or ``all``."""
    if text.strip().lower() == "all":
        return "all"
    try:
        lo, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO:HI (two whole numbers) or all, got {text!r}") from None
    return lo, hi


def _parser_for(annotation: Any) -> tuple[Callable[[str], Any] | None, tuple | None]:
    """(type, choices) for an argparse option from a field annotation."""
    if get_origin(annotation) is not None and type(None) in get_args(annotation):  # X | None: an option is X or not given
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    choices = choices_of(annotation)
    if choices is not None:
        kind = type(choices[0])
        return (whole_number if kind is int else str), choices
    if annotation is int:
        return whole_number, None
    if annotation is float:
        return finite_float, None
    if get_origin(annotation) in (tuple, list):
        return parse_int_list, None
    return str, None


def add_setting(parser: argparse.ArgumentParser | argparse._ArgumentGroup, flag: str, config: type, name: str | None = None,
                help: str | None = None, default_text: str | None = None, parse: Callable[[str], Any] | None = None,  # noqa: A002
                **kwargs: Any) -> argparse.Action:
    """An option for field ``name`` of dataclass ``config`` (default: the flag without dashes, - as _).

    Booleans become ``--flag / --no-flag``. The option's value is None unless given; the help shows the
    config's default (or ``default_text``, e.g. "the checkpoint's"). ``parse`` reads the text where the
    annotation alone does not say how (e.g. ``LO:HI`` or ``all``); the config still checks the value.
    """
    name = name or flag.lstrip("-").replace("-", "_")
    annotation = field_annotation(config, name)
    text = help if help is not None else field_help(config, name)
    shown = default_text if default_text is not None else shown_default(field_default(config, name))
    full_help = (f"{text} (default: {shown})" if text else f"default: {shown}").replace("%", "%%")  # argparse formats help with %
    if annotation is bool or annotation == bool | None:
        action = parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=full_help, dest=kwargs.pop("dest", name), **kwargs)
    else:
        kind, choices = _parser_for(annotation) if parse is None else (parse, None)
        action = parser.add_argument(flag, type=kind, choices=choices, default=None, help=full_help, dest=kwargs.pop("dest", name), **kwargs)
    action.setting = name  # type: ignore[attr-defined]  # the config field behind it, for option_for_setting
    return action


def option_for_setting(parser: argparse.ArgumentParser, message: str) -> str:
    """``message`` with a leading ``FIELD:`` (how a config names a bad value) shown as the option the user typed
    (``num_timesteps: ...`` -> ``--timesteps: ...``), where exactly one option of ``parser`` sets that field."""
    field, colon, rest = message.partition(": ")
    if not colon:
        return message
    flags = [a.option_strings[0] for a in parser._actions if getattr(a, "setting", None) == field and a.option_strings]
    return f"{flags[0]}: {rest}" if len(flags) == 1 else message


def shown_default(value: Any) -> str:
    """A default as the help shows it: lists comma-separated, floats short, None as none."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def given(args: argparse.Namespace, names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The options among ``names`` that the user gave (not None), as a dict for a config."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
