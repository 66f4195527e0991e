"""The one exception type for bad user input.

Every reader and command raises :class:`InputError` with a one-line message that names the file (and row)
at fault; the CLI prints it as ``error: ...`` and exits with status 2, so scripts can tell bad input (2)
from a crash (1).
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input from the user: a missing or corrupt file, a wrong shape, a label out of range."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None, row: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if row is not None:
                where += f", row {row}"
            where += ": "
        # One line, always: a multi-line message breaks the "one clear line" contract of the CLI; other control
        # characters (a NUL or an escape sequence in a name from a file) are shown escaped, never sent raw.
        super().__init__((where + message).replace("\n", " ").translate(_ESCAPED_CONTROLS))


_ESCAPED_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(32), 127) if code != ord("\n")}
