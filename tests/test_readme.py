"""The README's "Use from Python" example runs as written (so it cannot rot)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(section: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"## {section}")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start : end if end > 0 else None], flags=re.S)


def test_use_from_python_example_runs(tmp_path, monkeypatch):
    blocks = python_blocks("Use from Python")
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102  (our own README)
    sevens = namespace["sevens"]
    assert sevens.shape == (10, 28, 28, 3) and str(sevens.dtype) == "uint8"
