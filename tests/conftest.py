"""Shared fixtures: where the real data lies, and a way to run the CLI in-process."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DIFFADAPT_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_file(*parts: str) -> Path:
    """A file of ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (README.md, section 'Getting the real data', says where it comes from)")
    return path


@pytest.fixture
def run_cli(capsys):
    """Run ``diffadapt ARGS...`` in-process; returns (exit code, stdout, stderr)."""
    from diffadapt.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse: --help (0) and usage errors (2)
            code = int(exit_.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
