"""Training curves: one ``metrics.csv`` per run folder, a ``curves.png`` beside it, optional TensorBoard.

Every training command (``digits train``, ``faces train``, ``adapt train``) keeps a :class:`MetricsLog`:
rows of named numbers (per logging window or per epoch), written as CSV with each checkpoint and plotted
at the end, one panel per quantity.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from diffadapt.errors import InputError  # noqa: E402
from diffadapt.io import atomic_path, decode_utf8, read_bytes_limited, write_text_atomic  # noqa: E402

METRICS_FILE = "metrics.csv"
MAX_METRICS_BYTES = 64 << 20  # rows are about 60 bytes: room for a million logged steps
CURVES_FILE = "curves.png"


def tensorboard_writer(folder: str | Path):
    """A TensorBoard SummaryWriter for ``folder``; the ``tensorboard`` package is an optional extra."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise InputError("--tensorboard needs the tensorboard package: pip install 'diffadapt[tensorboard]'") from None
    return SummaryWriter(str(folder))


class MetricsLog:
    """Rows of numbers with fixed columns; ``write`` saves them as CSV, ``plot`` draws them."""

    def __init__(self, columns: Sequence[str], title: str = "", tensorboard: str | Path | None = None) -> None:
        self.columns = list(columns)
        self.rows: list[dict[str, Any]] = []
        self.title = title
        self.writer = tensorboard_writer(tensorboard) if tensorboard else None

    def add(self, **values: Any) -> None:
        """One row; columns not given are left empty (e.g. a target-val accuracy measured only sometimes)."""
        unknown = set(values) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown metric columns {sorted(unknown)}")
        self.rows.append(values)
        if self.writer is not None:
            step = int(values.get("step", values.get("epoch", len(self.rows))))
            for key, value in values.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(key, value, step)

    def column(self, name: str) -> list[float]:
        return [float(row[name]) for row in self.rows if row.get(name) is not None]

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        return buffer.getvalue()

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / METRICS_FILE
        write_text_atomic(path, self.to_csv())
        return path

    def load(self, folder: str | Path, until_step: int) -> None:
        """Rows of an earlier ``metrics.csv`` up to ``until_step`` (for ``--resume``); none if absent."""
        path = Path(folder) / METRICS_FILE
        if not path.is_file():
            return
        text = decode_utf8(read_bytes_limited(path, "metrics", MAX_METRICS_BYTES), path)
        try:
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
        except csv.Error as exc:
            raise InputError(f"not readable CSV ({exc})", path) from None
        for row in rows:
            try:
                values = {k: float(v) for k, v in row.items() if k in self.columns and isinstance(v, str) and v}
            except ValueError:
                continue
            step = values.get("step")
            # A row the run did not write (no whole step in 0..until_step) is dropped; a NaN loss is kept, it happened.
            if step is None or not math.isfinite(step) or step != int(step) or not 0 <= step <= until_step:
                continue
            self.rows.append({k: int(v) if k == "step" else v for k, v in values.items()})

    def plot(self, path: str | Path, x: str, series: Sequence[str]) -> Path | None:
        """One panel per quantity in ``series`` against ``x``; nothing when there are no rows."""
        shown = [name for name in series if self.column(name)]
        if not self.rows or not shown:
            return None
        fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.4), dpi=100, squeeze=False)
        for ax, name in zip(axes[0], shown):
            points = [(float(row[x]), float(row[name])) for row in self.rows if row.get(name) is not None and row.get(x) is not None]
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, linewidth=1.5)
            ax.set_xlabel(x)
            ax.set_title(name.replace("_", " "))
            ax.grid(alpha=0.3)
            if name == "loss" and min(ys) > 0 and max(ys) / min(ys) > 20:
                ax.set_yscale("log")
        if self.title:
            fig.suptitle(self.title)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        return Path(path)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
