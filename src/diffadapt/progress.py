"""Progress bars: tqdm on stderr, drawn only when stderr is a terminal.

A bar written into a log or a pipe is noise, and a half-drawn bar must never precede the one-line error a
command prints on bad input; so bars appear on a terminal and nowhere else (tqdm's ``disable=None``).
"""

from __future__ import annotations

from tqdm import tqdm


def progress_bar(total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = True, leave: bool = False) -> tqdm:
    """A bar of ``total`` units; ``enabled=False`` (e.g. ``--no-progress``) hides it even on a terminal."""
    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled else True, leave=leave, dynamic_ncols=True)
