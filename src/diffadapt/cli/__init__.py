"""The ``diffadapt`` command line: one subcommand family per task.

Families register themselves from small modules and import their heavy dependencies (torch models,
matplotlib, scikit-learn) only when a command runs, so ``diffadapt --help`` stays fast.

The contract of every command: bad input is one line ``error: ...`` on stderr and exit status 2, with no
library warning before it and nothing half-written (interrupts, SIGTERM included, remove temporaries).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from diffadapt import __version__
from diffadapt.cli.common import option_for_setting
from diffadapt.errors import InputError
from diffadapt.io import is_no_space, path_problem, terminate_as_interrupt


class Parser(argparse.ArgumentParser):
    """argparse with the toolkit's error contract: a usage error is one line on stderr and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from diffadapt.cli import adapt, data, demo, digits, faces

    parser = Parser(
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
    terminate_as_interrupt()
    # Library warnings are held back while the command runs: shown after a success, dropped before an error.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            code = int(handler(args) or 0)
        except InputError as exc:
            parser_used = getattr(args, "command_parser", None)
            print(f"error: {option_for_setting(parser_used, str(exc)) if parser_used else exc}", file=sys.stderr)
            return InputError.exit_code
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as exc:
            # Last resort for a path the system refuses (too long a name, no permission) met outside the readers'
            # own checks, and for a full disk met by a write outside the atomic helpers (which say it themselves).
            problem = path_problem(exc)
            if problem is not None:
                print(f"error: {problem}", file=sys.stderr)
                return InputError.exit_code
            if not is_no_space(exc):
                raise
            full = InputError("no space left on device (or over the disk quota); free some space or write elsewhere", getattr(exc, "filename", None))
            print(f"error: {full}", file=sys.stderr)
            return InputError.exit_code
    for warning in caught:
        print(f"warning: {warning.category.__name__}: {warning.message}", file=sys.stderr)
    return code
