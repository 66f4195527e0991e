"""The report's table: target accuracy per scenario (columns) and method (rows), mean +- std over seeds."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from pathlib import Path

from diffadapt.adapt.runs import run_folders

DOMAIN_NAMES = {"mnistm": "MNIST-M", "mnist": "MNIST", "usps": "USPS", "svhn": "SVHN"}
MODE_ORDER = {"source": 0, "dann": 1, "target": 2}


def method_name(mode: str, recipe: str) -> str:
    if mode == "source":
        return f"trained on source ({recipe})"
    if mode == "target":
        return f"trained on target ({recipe})"
    return f"DANN ({recipe})"


def scenario_name(source: str, target: str, target_spec: str) -> str:
    name = DOMAIN_NAMES.get(target, target)
    if target_spec in ("svhn", "usps", "mnist", "mnistm") or target_spec.startswith("embedded:"):
        name += " (embedded)"
    return f"{DOMAIN_NAMES.get(source, source)} -> {name}"


def collect(runs: list[str | Path]) -> dict[tuple[str, str], list[float]]:
    """{(method, scenario): [target val accuracy per seed]} over every seed folder of the given runs."""
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    order: dict[str, tuple] = {}
    for run in runs:
        for folder in run_folders(run):
            document = json.loads((folder / "config.json").read_text())
            config = document["config"]
            method = method_name(config["mode"], config["recipe"])
            order[method] = (MODE_ORDER[config["mode"]], config["recipe"] != "report")
            scenario = scenario_name(document["source"]["domain"], document["target"]["domain"], document["target"]["spec"])
            cells[(method, scenario)].append(float(document["results"]["target_val_accuracy"]))
    return dict(sorted(cells.items(), key=lambda kv: order[kv[0][0]]))


def cell_text(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f} (1 seed)"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f} ({len(values)} seeds)"


def render(cells: dict[tuple[str, str], list[float]]) -> tuple[str, str]:
    """(markdown, csv) of the table."""
    methods = list(dict.fromkeys(m for m, _ in cells))
    scenarios = sorted(dict.fromkeys(s for _, s in cells))
    lines = ["| target accuracy | " + " | ".join(scenarios) + " |", "|---|" + "---|" * len(scenarios)]
    for method in methods:
        lines.append(f"| {method} | " + " | ".join(cell_text(cells[(method, s)]) if (method, s) in cells else "-" for s in scenarios) + " |")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "scenario", "mean", "std", "seeds", "values"])
    for (method, scenario), values in cells.items():
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        writer.writerow([method, scenario, f"{statistics.mean(values):.4f}", f"{std:.4f}", len(values), " ".join(f"{v:.4f}" for v in values)])
    return "\n".join(lines) + "\n", buffer.getvalue()


def write_table(runs: list[str | Path], out_dir: str | Path) -> tuple[str, Path, Path]:
    from diffadapt.viz.atomic import write_text_atomic

    markdown, table_csv = render(collect(runs))
    out_dir = Path(out_dir)
    write_text_atomic(out_dir / "adaptation_table.md", markdown)
    write_text_atomic(out_dir / "adaptation_table.csv", table_csv)
    return markdown, out_dir / "adaptation_table.md", out_dir / "adaptation_table.csv"
