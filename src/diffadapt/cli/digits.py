"""``diffadapt digits``."""

from __future__ import annotations

import argparse


def register(families: argparse._SubParsersAction) -> None:
    pass
