"""The report's table: target accuracy per scenario (columns) and method (rows), mean +- std over seeds.

Rows name the method, the recipe and how weights were chosen (a kept mean teacher says so); a row whose
epochs were chosen on target labels says "oracle" in its name, in every table.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from pathlib import Path

from diffadapt.adapt.config import ADAPT_METHODS
from diffadapt.apps.adaptation.runs import read_run_document, run_folders
from diffadapt.data.domains import display_name
from diffadapt.data.embedded import EMBEDDED_DOMAINS
from diffadapt.errors import InputError
from diffadapt.io import check_output_files, write_text_atomic
from diffadapt.settings import is_finite_number

METHOD_TITLES = {"source": "trained on source", "target": "trained on target", "dann": "DANN", "cdan": "CDAN+E", "fixmatch": "FixMatch", "vada": "VADA"}
SELECTION_NOTES = {"last": "", "source-val": ", source-val selection", "target-val-oracle": ", oracle: target-val selection"}


def method_name(method: str, recipe: str, selection: str = "last", final_weights: str = "student") -> str:
    kept = ", EMA teacher kept" if final_weights == "teacher" else ""
    return f"{METHOD_TITLES.get(method, method)} ({recipe}{kept}{SELECTION_NOTES.get(selection, ', ' + selection)})"


def scenario_name(source: str, target: str, target_spec: str) -> str:
    name = display_name(target)
    if target_spec in EMBEDDED_DOMAINS or target_spec.startswith("embedded:"):
        name += " (embedded)"
    return f"{display_name(source)} -> {name}"


def collect(runs: list[str | Path]) -> dict[tuple[str, str], list[float]]:
    """{(method, scenario): [target val accuracy per seed]} over every seed folder of the given runs."""
    cells: dict[tuple[str, str], list[float]] = defaultdict(list)
    order: dict[str, tuple] = {}
    seen: set[Path] = set()
    seeds: dict[tuple[str, str, int], Path] = {}
    for run in runs:
        for folder in run_folders(run):
            if folder.resolve() in seen:  # the same run given twice, or a run and its own seed folder: counted once
                continue
            seen.add(folder.resolve())
            document, config = read_run_document(folder)
            results = document.get("results")
            accuracy = results.get("target_val_accuracy") if isinstance(results, dict) else None
            if not is_finite_number(accuracy) or not 0 <= accuracy <= 1:
                raise InputError("results.target_val_accuracy must be a number in 0..1", folder / "config.json")
            method = method_name(config.method, config.recipe, config.selection, config.final_weights)
            rank = 0 if config.method == "source" else 2 if config.method == "target" else 1
            order[method] = (rank, ADAPT_METHODS.index(config.method), config.recipe != "report", config.final_weights, config.selection)
            scenario = scenario_name(document["source"]["domain"], document["target"]["domain"], document["target"]["spec"])
            check_new_seed(seeds, (method, scenario, config.seed), folder)
            cells[(method, scenario)].append(float(accuracy))
    return dict(sorted(cells.items(), key=lambda kv: order[kv[0][0]]))


def check_new_seed(seeds: dict[tuple[str, str, int], Path], key: tuple[str, str, int], folder: Path) -> None:
    """A cell's mean and std are over distinct seeds: a copied run folder (``cp -r run copy``) has other
    paths but the same seeds, and would count each of them twice."""
    if key in seeds:
        method, scenario, seed = key
        raise InputError(f"seed {seed} of {method} on {scenario} is also in {seeds[key]}; give each seed once", folder / "config.json")
    seeds[key] = folder


def markdown_cell(text: str) -> str:
    """A table cell's text with the characters that would break a markdown row escaped."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("\r", " ")


def cell_text(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f} (1 seed)"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f} ({len(values)} seeds)"


def render(cells: dict[tuple[str, str], list[float]]) -> tuple[str, str]:
    """(markdown, csv) of the table."""
    methods = list(dict.fromkeys(m for m, _ in cells))
    scenarios = sorted(dict.fromkeys(s for _, s in cells))
    lines = ["| target accuracy | " + " | ".join(map(markdown_cell, scenarios)) + " |", "|---|" + "---|" * len(scenarios)]
    for method in methods:
        lines.append(f"| {markdown_cell(method)} | " + " | ".join(cell_text(cells[(method, s)]) if (method, s) in cells else "-" for s in scenarios) + " |")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "scenario", "mean", "std", "seeds", "values"])
    for (method, scenario), values in cells.items():
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        writer.writerow([method, scenario, f"{statistics.mean(values):.4f}", f"{std:.4f}", len(values), " ".join(f"{v:.4f}" for v in values)])
    return "\n".join(lines) + "\n", buffer.getvalue()


def write_table(runs: list[str | Path], out_dir: str | Path) -> tuple[str, Path, Path]:
    markdown, table_csv = render(collect(runs))
    out_dir = Path(out_dir)
    markdown_file, csv_file = out_dir / "adaptation_table.md", out_dir / "adaptation_table.csv"
    check_output_files(markdown_file, csv_file)
    write_text_atomic(markdown_file, markdown)
    write_text_atomic(csv_file, table_csv)
    return markdown, markdown_file, csv_file
