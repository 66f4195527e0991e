"""Running the report's parts and collecting their figures, settings and measured numbers.

Each part calls the same application functions as its command (``digits generate`` / ``evaluate``, the
faces figures, ``adapt train`` / ``table`` / ``tsne``), so the page shows what the commands produce.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from diffadapt.adapt.config import preset
from diffadapt.apps.adaptation.runs import load_pair, load_run, run_folders, train_runs
from diffadapt.apps.adaptation.table import write_table
from diffadapt.apps.adaptation.tsne import TSNE_CLASS_FILE, TSNE_DOMAIN_FILE, tsne_figures
from diffadapt.apps.digits.figures import sample_grid, save_digit_grid, save_reverse_strip
from diffadapt.apps.digits.generate import generate_images, graded_labels
from diffadapt.apps.digits.scoring import score_images
from diffadapt.apps.faces.figures import eta_grid, interpolation_rows
from diffadapt.apps.faces.models import (
    course_sampler,
    digit_figure_inputs,
    face_figure_inputs,
    load_noise_dir,
    mse_against,
    to_graded_images,
)
from diffadapt.apps.preview import preview_grid
from diffadapt.apps.report.config import ReportConfig
from diffadapt.apps.report.html import render_page
from diffadapt.data import read_source
from diffadapt.data.domains import folder_name
from diffadapt.data.prepare import describe
from diffadapt.data.sources import check_source_exists
from diffadapt.device import pick_device
from diffadapt.diffusion.models import load_model
from diffadapt.diffusion.noise_model import sample_batched
from diffadapt.diffusion.sampling import SamplingSettings
from diffadapt.errors import InputError
from diffadapt.evaluate.judge import load_judge
from diffadapt.evaluate.lenet import load_course_classifier
from diffadapt.images import nhwc_to_nchw
from diffadapt.io import SHIPPED, atomic_dir, check_not_an_input, write_text_atomic
from diffadapt.viz.curves import CURVES_FILE


def check_inputs(config: ReportConfig, out: str | Path | None = None) -> None:
    """Fail before any work when a named file is missing, so a long report never dies half-way, or when the
    output folder is or holds any path the config names (``--overwrite`` would delete it)."""
    named = [
        ("digits.ckpt", config.digits.ckpt, SHIPPED), ("digits.classifier", config.digits.classifier, ""),
        ("digits.judge", config.digits.judge, SHIPPED), ("ddim.ckpt", config.ddim.ckpt, SHIPPED),
        ("ddim.unet", config.ddim.unet, ""), ("ddim.noise_dir", config.ddim.noise_dir, ""), ("ddim.gt_dir", config.ddim.gt_dir, ""),
    ]
    if out is not None:  # every path named, whichever parts run (embedded domain names are not paths and are skipped)
        paths = [value for _, value, unset in named if value != unset]
        paths += [*config.adapt.runs, config.adapt.source, *config.adapt.targets, *config.data_sources]
        check_not_an_input(out, paths, "the report's output folder", may_lie_inside=True)
    for key, value, unset in named:
        if value != unset and not Path(value).exists():
            raise InputError(f"{key} names a path that does not exist", value)
    # The domains the parts will read (the data part shows the adaptation's when data_sources is empty), checked
    # now: a bad one would otherwise fail only when its part starts, after the minutes of the parts before it.
    domains: list[tuple[str, str]] = []
    if "adapt" in config.parts or ("data" in config.parts and not config.data_sources):
        domains += [("adapt.source", config.adapt.source), *(("adapt.targets", target) for target in config.adapt.targets)]
    if "data" in config.parts:
        domains += [("data_sources", source) for source in config.data_sources]
    for key, spec in domains:
        try:
            check_source_exists(spec)
        except InputError as exc:
            raise InputError(f"{key}: {exc}") from None
    if config.ddim.unet and not config.ddim.noise_dir:
        raise InputError("ddim.unet needs ddim.noise_dir")
    if "digits" in config.parts:
        _check_digits_part(config)
    for run in config.adapt.runs:
        if not Path(run).exists():
            raise InputError("adapt.runs names a folder that does not exist", run)


def _check_digits_part(config: ReportConfig) -> None:
    """Load what the digits part names and build its sampler, so a bad value fails now, naming its key, and
    not after the figures have been sampled (the loads take about a second)."""
    part = config.digits

    def checked(keys: str, check: Callable[[], Any]) -> Any:
        try:
            return check()
        except InputError as exc:
            raise InputError(f"{keys}: {exc}") from None

    loaded = checked("digits.ckpt", lambda: load_model(None if part.ckpt == SHIPPED else part.ckpt))
    checked("digits.ckpt", lambda: loaded.check_classes(graded_labels(1)))
    settings = part.over(loaded.defaults)
    checked("digits.guidance / digits.guidance_interval", lambda: settings.guidance_config(loaded.schedule))
    checked("digits.method / digits.steps / digits.eta / digits.spacing", lambda: settings.sampler_config(loaded.schedule))
    if part.judge:
        checked("digits.judge", lambda: load_judge(None if part.judge == SHIPPED else part.judge))
    if part.classifier:
        checked("digits.classifier", lambda: load_course_classifier(part.classifier))


def data_part(config: ReportConfig, out: Path) -> dict[str, Any]:
    sources = list(config.data_sources) or [config.adapt.source, *config.adapt.targets]
    summaries = [describe(read_source(s, seed=config.seed, progress=False)) for s in sources]
    preview_grid(sources, out / "domains.png", seed=config.seed)
    return {"sources": sources, "summary": "\n\n".join(summaries), "figure": "domains.png"}


def digits_part(config: ReportConfig, out: Path, device: torch.device) -> dict[str, Any]:
    part = config.digits
    loaded = load_model(None if part.ckpt == SHIPPED else part.ckpt, device=device)
    sampler, guidance = loaded.sampling(part)
    timings = {}
    start = time.perf_counter()
    grid, states = sample_grid(loaded, sampler, guidance, config.seed, progress=False)
    save_digit_grid(grid, out / "digits_grid.png")
    save_reverse_strip(states, out / "digits_reverse.png")
    timings["grid_and_reverse_s"] = time.perf_counter() - start
    start = time.perf_counter()
    images, labels = generate_images(loaded, part.per_class, sampler, guidance, config.seed, part.batch_size, progress=False)
    timings["generate_s"] = time.perf_counter() - start
    start = time.perf_counter()
    scores = score_images(nhwc_to_nchw(images), labels.numpy(), part.classifier or None, part.judge, part.real or None, part.score_seeds)
    timings["score_s"] = time.perf_counter() - start
    return {
        "checkpoint": "shipped default" if part.ckpt == SHIPPED else part.ckpt,
        "model": loaded.config.get("model"), "trained": loaded.config.get("training_summary", {}),
        "sampler": sampler.describe(loaded.schedule), "guidance": str(guidance),
        "forwards_per_image": guidance.forwards(sampler.timesteps(loaded.schedule)), "device": device.type,
        "precision": "bf16" if loaded.bf16 else "fp32", "scores": scores.to_dict(), "timings": timings,
        "real": part.real, "figures": {"grid": "digits_grid.png", "reverse": "digits_reverse.png"},
    }


def ddim_part(config: ReportConfig, out: Path, device: torch.device) -> dict[str, Any]:
    part = config.ddim
    result: dict[str, Any] = {}
    if part.unet:
        figure = face_figure_inputs(part.unet, part.noise_dir, 4, device, part.precision, part.steps)
        result["source"] = f"{figure.model.name} ({part.unet}), noises {part.noise_dir}"
        if part.gt_dir:
            names, noises = load_noise_dir(part.noise_dir)
            start = time.perf_counter()
            outputs = to_graded_images(sample_batched(figure.model, noises, course_sampler(figure.model, SamplingSettings(steps=figure.steps)), progress=False))
            result["generate_s"] = time.perf_counter() - start
            errors = mse_against(outputs, [Path(part.gt_dir) / f"{n}.png" for n in names])
            result["mse"] = {n: e for n, e in zip(names, errors)}
            result["mean_mse"] = sum(errors) / len(errors)
    else:
        loaded = load_model(None if part.ckpt == SHIPPED else part.ckpt, device=device, precision=part.precision)
        figure = digit_figure_inputs(loaded, part.digit, 4, config.seed, steps=part.steps)
        result["source"] = f"digit checkpoint ({'shipped default' if part.ckpt == SHIPPED else part.ckpt}), {figure.model.name}, noise from seed {config.seed}"
    result.update(steps=figure.steps, spacing=figure.spacing)
    start = time.perf_counter()
    eta_grid(figure.model, figure.noises, figure.names, figure.to_images, out / "ddim_eta_grid.png", steps=figure.steps, seed=config.seed,
             spacing=figure.spacing)
    result["eta_grid_s"] = time.perf_counter() - start
    start = time.perf_counter()
    interpolation_rows(figure.model, figure.noises[:1], figure.noises[1:2], figure.to_images, out / "ddim_interpolation.png",
                       steps=figure.steps, spacing=figure.spacing)
    result["interpolation_s"] = time.perf_counter() - start
    result["figures"] = {"eta_grid": "ddim_eta_grid.png", "interpolation": "ddim_interpolation.png"}
    return result


def _shown(path: Path, out: Path) -> str:
    """A path as the page should show it: relative to the report folder when it lies inside."""
    try:
        return str(path.relative_to(out))
    except ValueError:
        return str(path)


def adapt_part(config: ReportConfig, out: Path, device: torch.device) -> dict[str, Any]:
    part = config.adapt
    runs: list[Path] = [Path(r) for r in part.runs]
    timings: dict[str, float] = {}
    if not part.runs:
        for target_spec in part.targets:
            # The recipe decides how the domains are framed, the same for every method: one read per target.
            pair = load_pair(part.source, target_spec, preset(part.recipe, "dann"))
            source, target, framed = pair
            for method in part.methods:
                method_config = replace(preset(part.recipe, method, epochs=part.epochs, batch_size=part.batch_size),
                                        source_box=framed.source_box, target_box=framed.target_box)
                run_dir = out / "adapt" / f"{folder_name(source.domain)}-to-{folder_name(target.domain)}" / f"{method}-{part.recipe}"
                start = time.perf_counter()
                train_runs(part.source, target_spec, method_config, run_dir, part.seeds, device, progress=True,
                           report=lambda line: None, pair=(source, target, method_config))
                timings[f"{source.domain}-to-{target.domain}/{method}"] = time.perf_counter() - start
                runs.append(run_dir)
    markdown, _, _ = write_table(runs, out)
    figures, curves = [], []
    for run in runs:
        loaded = load_run(run)
        name = f"{folder_name(loaded.document['source']['domain'])}-to-{folder_name(loaded.document['target']['domain'])}-{loaded.config.method}"
        if (loaded.path / CURVES_FILE).is_file() and str(loaded.path).startswith(str(out)):
            curves.append({"run": name, "figure": _shown(loaded.path / CURVES_FILE, out)})
        if loaded.config.method in ("source", "target"):
            continue
        folder = out / "tsne" / name
        start = time.perf_counter()
        tsne_figures(loaded, folder, part.tsne_per_domain, config.seed)
        timings[f"tsne {name}"] = time.perf_counter() - start
        figures.append({"scenario": name, "class": f"tsne/{name}/{TSNE_CLASS_FILE}", "domain": f"tsne/{name}/{TSNE_DOMAIN_FILE}"})
    settings = {k: v for k, v in asdict(part).items() if k != "runs"}
    return {"table_markdown": markdown, "table_csv": "adaptation_table.csv", "tsne": figures, "curves": curves, "timings": timings,
            "settings": settings, "runs": [_shown(r, out) for r in runs], "seed_folders": sum(len(run_folders(r)) for r in runs)}


PARTS = {"data": "a sample of every domain", "digits": "generate and score digits", "ddim": "DDIM figures",
         "adapt": "adaptation runs, table and t-SNE"}


def build_report(config: ReportConfig, out: str | Path, overwrite: bool = False, log=print) -> Path:
    """Run every part into a temporary folder, write index.html and report.json, then move it into place.

    ``log`` gets one line per stage ("stage k of n: ...") with the time so far and an estimate of the rest.
    """
    check_inputs(config, out)
    try:
        device = pick_device(config.device)
    except InputError as exc:
        raise InputError(f"device: {exc}") from None
    out = Path(out)
    results: dict[str, Any] = {"title": config.title, "device": device.type, "seed": config.seed, "config": asdict(config)}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        runners = {"data": lambda: data_part(config, tmp), "digits": lambda: digits_part(config, tmp, device),
                   "ddim": lambda: ddim_part(config, tmp, device), "adapt": lambda: adapt_part(config, tmp, device)}
        total_start = time.perf_counter()
        parts = list(config.parts)
        for number, name in enumerate(parts, start=1):
            elapsed = time.perf_counter() - total_start
            log(f"stage {number} of {len(parts)}: {name} ({PARTS[name]}); {elapsed:.0f} s so far{stage_estimate(parts, number, elapsed)}")
            start = time.perf_counter()
            results[name] = runners[name]()
            results[name]["seconds"] = time.perf_counter() - start
        results["total_seconds"] = time.perf_counter() - total_start
        write_text_atomic(tmp / "report.json", json.dumps(results, indent=2, default=str) + "\n")
        write_text_atomic(tmp / "index.html", render_page(results))
    return out / "index.html"


# Each part's share of the demo's time (measured on 2 CPU cores, see benchmarks/RESULTS.md): after the first
# stage, the time it took scales these shares into an estimate of what is left.
STAGE_SHARES = {"data": 0.04, "digits": 0.16, "ddim": 0.03, "adapt": 0.77}


def stage_estimate(parts: list[str], number: int, elapsed: float) -> str:
    done = sum(STAGE_SHARES[p] for p in parts[: number - 1])
    if done <= 0 or elapsed < 1:
        return ""
    left = sum(STAGE_SHARES[p] for p in parts[number - 1 :])
    return f", about {elapsed * left / done:.0f} s to go"
