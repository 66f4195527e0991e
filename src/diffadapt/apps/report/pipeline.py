"""Running the report's parts and collecting their figures, settings and measured numbers."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from diffadapt.adapt.config import preset
from diffadapt.adapt.trainer import train_adaptation
from diffadapt.apps.adaptation.runs import load_pair, load_run, run_folders, save_run
from diffadapt.apps.adaptation.table import write_table
from diffadapt.apps.adaptation.tsne import tsne_figures
from diffadapt.apps.digits.figures import sample_grid, save_digit_grid, save_reverse_strip
from diffadapt.apps.digits.generate import graded_labels, initial_noise, sample_digits, to_images
from diffadapt.apps.faces.figures import eta_grid, interpolation_rows
from diffadapt.apps.faces.models import ddim_faces, digit_noise_model, load_face_model, load_noise_dir, mse_against, to_graded_images
from diffadapt.apps.preview import preview_grid
from diffadapt.apps.report.config import ReportConfig
from diffadapt.apps.report.html import render_page
from diffadapt.data import read_source
from diffadapt.data.prepare import describe
from diffadapt.device import pick_device
from diffadapt.diffusion.models import load_model
from diffadapt.errors import InputError
from diffadapt.evaluate.frechet import feature_statistics, frechet_distance
from diffadapt.evaluate.generated import score_digits
from diffadapt.evaluate.judge import judge_features, load_judge
from diffadapt.evaluate.lenet import load_course_classifier
from diffadapt.io import atomic_dir, write_text_atomic


def check_inputs(config: ReportConfig) -> None:
    """Fail before any work when a named file is missing, so a long report never dies half-way."""
    named = [
        ("digits.ckpt", config.digits.ckpt, "default"), ("digits.classifier", config.digits.classifier, ""),
        ("digits.judge", config.digits.judge, "default"), ("ddim.ckpt", config.ddim.ckpt, "default"),
        ("ddim.unet", config.ddim.unet, ""), ("ddim.noise_dir", config.ddim.noise_dir, ""), ("ddim.gt_dir", config.ddim.gt_dir, ""),
    ]
    for key, value, unset in named:
        if value != unset and not Path(value).exists():
            raise InputError(f"{key} names a path that does not exist", value)
    if config.ddim.unet and not config.ddim.noise_dir:
        raise InputError("ddim.unet needs ddim.noise_dir")
    for run in config.adapt.runs:
        if not Path(run).exists():
            raise InputError("adapt.runs names a folder that does not exist", run)
    unknown = set(config.parts) - {"data", "digits", "ddim", "adapt"}
    if unknown:
        raise InputError(f"unknown report part {sorted(unknown)[0]!r} (data, digits, ddim, adapt)")


def data_part(config: ReportConfig, out: Path) -> dict[str, Any]:
    sources = config.data_sources or [config.adapt.source, *config.adapt.targets]
    summaries = [describe(read_source(s, seed=config.seed, progress=False)) for s in sources]
    preview_grid(sources, out / "domains.png", seed=config.seed)
    return {"sources": sources, "summary": "\n\n".join(summaries), "figure": "domains.png"}


def digits_part(config: ReportConfig, out: Path, device: torch.device) -> dict[str, Any]:
    part = config.digits
    loaded = load_model(None if part.ckpt == "default" else part.ckpt, device=device)
    guidance = loaded.guidance(part.guidance, part.guidance_interval)
    sampler = loaded.sampler(part.method, part.steps, part.eta)
    timings = {}
    start = time.perf_counter()
    grid, states = sample_grid(loaded, sampler, guidance, config.seed)
    save_digit_grid(grid, out / "digits_grid.png")
    save_reverse_strip(states, out / "digits_reverse.png")
    timings["grid_and_reverse_s"] = time.perf_counter() - start

    labels = graded_labels(part.per_class)
    cfg = loaded.model_config
    start = time.perf_counter()
    x0 = sample_digits(loaded, labels, initial_noise(len(labels), (cfg.in_channels, cfg.image_size, cfg.image_size), config.seed),
                       sampler, guidance, config.seed, part.batch_size)
    timings["generate_s"] = time.perf_counter() - start
    images = torch.from_numpy(to_images(x0)).permute(0, 3, 1, 2).contiguous()
    if images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    judge = load_judge(None if part.judge == "default" else part.judge)

    features, predictions = judge_features(judge.model, images)
    scores: dict[str, Any] = {
        "images": len(labels),
        "judge_accuracy": float((predictions == labels.numpy()).mean()),
        "frechet": frechet_distance(*feature_statistics(features), judge.mu, judge.sigma),
        "floor_halves": judge.config.get("floor_halves"),
        "floor_at_n": judge.config.get("floors_by_size", {}).get(str(len(labels))),
    }
    if part.classifier:
        course = score_digits(images, labels.numpy(), load_course_classifier(part.classifier))
        scores["course_accuracy"] = course.overall
        scores["course_per_class"] = course.per_class
    return {
        "checkpoint": "shipped default" if part.ckpt == "default" else part.ckpt,
        "model": loaded.config.get("model"), "trained": loaded.config.get("training_summary", {}),
        "sampler": asdict(sampler), "guidance": str(guidance), "device": device.type, "precision": "bf16" if loaded.bf16 else "fp32",
        "scores": scores, "timings": timings, "figures": {"grid": "digits_grid.png", "reverse": "digits_reverse.png"},
    }


def ddim_part(config: ReportConfig, out: Path, device: torch.device) -> dict[str, Any]:
    part = config.ddim
    result: dict[str, Any] = {"steps": part.steps}
    if part.unet:
        model = load_face_model(part.unet, device, part.precision)
        names, noises = load_noise_dir(part.noise_dir)
        rule = to_graded_images
        result["source"] = f"{model.name} ({part.unet}), noises {part.noise_dir}"
        if part.gt_dir:
            start = time.perf_counter()
            outputs = to_graded_images(ddim_faces(model, noises, steps=part.steps, eta=0.0, progress=False))
            result["generate_s"] = time.perf_counter() - start
            errors = mse_against(outputs, [Path(part.gt_dir) / f"{n}.png" for n in names])
            result["mse"] = {n: e for n, e in zip(names, errors)}
            result["mean_mse"] = sum(errors) / len(errors)
    else:
        loaded = load_model(None if part.ckpt == "default" else part.ckpt, device=device, precision=part.precision)
        guidance = loaded.guidance()
        model = digit_noise_model(loaded, part.digit, guidance)
        cfg = loaded.model_config
        noises = initial_noise(4, (cfg.in_channels, cfg.image_size, cfg.image_size), config.seed)
        names = [f"z{i}" for i in range(4)]
        rule = to_images
        result["source"] = f"digit checkpoint ({'shipped default' if part.ckpt == 'default' else part.ckpt}), digit {part.digit}, guidance {guidance}, noise from seed {config.seed}"
    start = time.perf_counter()
    eta_grid(model, noises[:4], names[:4], rule, out / "ddim_eta_grid.png", steps=part.steps, seed=config.seed)
    result["eta_grid_s"] = time.perf_counter() - start
    start = time.perf_counter()
    interpolation_rows(model, noises[:1], noises[1:2], rule, out / "ddim_interpolation.png", steps=part.steps)
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
            for recipe in part.recipes:
                # The recipe decides how the domains are framed (the same for its three modes): one read per recipe.
                source, target, framed = load_pair(part.source, target_spec, preset(recipe, "dann"))
                for mode in part.modes:
                    mode_config = replace(preset(recipe, mode, epochs=part.epochs, batch_size=part.batch_size),
                                          source_box=framed.source_box, target_box=framed.target_box)
                    run_dir = out / "adapt" / f"{source.domain}-to-{target.domain}" / f"{mode}-{recipe}"
                    for seed in part.seeds:
                        run_config = replace(mode_config, seed=seed)
                        result = train_adaptation(run_config, source.train, source.val, target.train, target.val, device)
                        save_run(run_dir / f"seed{seed}", run_config, source, target, result, device.type)
                        timings[f"{run_dir.parent.name}/{run_dir.name}/seed{seed}"] = result.train_seconds
                    runs.append(run_dir)
    markdown, _, _ = write_table(runs, out)
    figures = []
    for run in runs:
        loaded = load_run(run)
        if loaded.config.mode != "dann":
            continue
        name = f"{loaded.document['source']['domain']}-to-{loaded.document['target']['domain']}-{loaded.config.recipe}"
        folder = out / "tsne" / name
        start = time.perf_counter()
        tsne_figures(loaded, folder, part.tsne_per_domain, config.seed)
        timings[f"tsne {name}"] = time.perf_counter() - start
        figures.append({"scenario": name, "class": f"tsne/{name}/tsne_class.png", "domain": f"tsne/{name}/tsne_domain.png"})
    settings = {k: v for k, v in asdict(part).items() if k != "runs"}
    return {"table_markdown": markdown, "table_csv": "adaptation_table.csv", "tsne": figures, "timings": timings,
            "settings": settings, "runs": [_shown(r, out) for r in runs], "seed_folders": sum(len(run_folders(r)) for r in runs)}


def build_report(config: ReportConfig, out: str | Path, overwrite: bool = False) -> Path:
    """Run every part into a temporary folder, write index.html and report.json, then move it into place."""

    check_inputs(config)
    device = pick_device(config.device)
    out = Path(out)
    results: dict[str, Any] = {"title": config.title, "device": device.type, "seed": config.seed, "config": asdict(config)}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        runners = {"data": lambda: data_part(config, tmp), "digits": lambda: digits_part(config, tmp, device),
                   "ddim": lambda: ddim_part(config, tmp, device), "adapt": lambda: adapt_part(config, tmp, device)}
        total_start = time.perf_counter()
        for name in config.parts:
            print(f"== {name} ==", flush=True)
            start = time.perf_counter()
            results[name] = runners[name]()
            results[name]["seconds"] = time.perf_counter() - start
        results["total_seconds"] = time.perf_counter() - total_start
        results["config"]["adapt"]["runs"] = [str(Path(r)) for r in config.adapt.runs]
        write_text_atomic(tmp / "report.json", json.dumps(results, indent=2, default=str) + "\n")
        write_text_atomic(tmp / "index.html", render_page(results))
    return out / "index.html"
