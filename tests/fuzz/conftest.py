"""Hypothesis profiles for the fuzz suite, chosen with ``DIFFADAPT_FUZZ_PROFILE`` (default ``ci``).

- ``ci``: a bounded, derandomised run (the same examples every time) that keeps the whole folder well
  under a minute on two slow shared cores.
- ``thorough``: thousands of fresh examples per reader, for a benchmark run::

      DIFFADAPT_FUZZ_PROFILE=thorough pytest tests/fuzz --hypothesis-show-statistics

Both have no deadline (the machine is slow and shared; a deadline would flag load, not bugs) and no
example database. Hypothesis's other files (a cache of constants found in the code under test, unicode
tables) go to a folder in the system's temporary directory, not ``.hypothesis/`` in the repository.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "diffadapt-hypothesis")

_COMMON = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=int(os.environ.get("DIFFADAPT_FUZZ_EXAMPLES", "30")), derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=int(os.environ.get("DIFFADAPT_FUZZ_EXAMPLES", "2000")), **_COMMON)
PROFILE = os.environ.get("DIFFADAPT_FUZZ_PROFILE", "ci")
settings.load_profile(PROFILE)


def pytest_report_header(config):
    return f"hypothesis fuzz profile: {PROFILE} ({settings.get_profile(PROFILE).max_examples} examples per reader)"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder for the files one test writes, example after example (tmp_path is per test, not per example)."""
    return tmp_path_factory.mktemp("fuzz")
