"""Adaptation run folders: data loading by spec, saving and loading trained classifiers.

A run folder ``RUN/seed{S}/`` holds ``model.safetensors`` and ``config.json`` (the AdaptConfig, both
domains' specs and normalisation statistics, and the measured accuracies). ``adapt train --seeds 0,1,2
--out RUN`` writes one such folder per seed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from diffadapt.adapt.config import FRAMES, AdaptConfig
from diffadapt.adapt.modules.networks import DigitClassifier
from diffadapt.adapt.trainer import AdaptResult, DomainStats, result_summary
from diffadapt.data import DigitSet, TensorImages, read_source, train_val
from diffadapt.errors import InputError

ADAPT_KIND = "diffadapt/digit-adaptation"


@dataclass
class DomainData:
    spec: str
    domain: str
    train: TensorImages
    val: TensorImages


def load_domain(spec: str, channels: int, size: int, box: int = 0) -> DomainData:
    """A domain's train and val splits as tensors of the asked channels and size (val never trains);
    ``box`` > 0 puts each image in a centred box of that side (see data/layout.py)."""
    return _to_tensors(spec, *_read_splits(spec), channels, size, box)


def load_pair(source_spec: str, target_spec: str, config: AdaptConfig) -> tuple[DomainData, DomainData, AdaptConfig]:
    """Both domains of a run, prepared as ``config`` asks; with ``frame="match"`` the boxes that bring the
    two domains' digits to one height are resolved here and returned in the config."""
    from dataclasses import replace

    from diffadapt.data.layout import matching_boxes

    if config.frame not in FRAMES:
        raise InputError(f"unknown frame {config.frame!r} (one of {', '.join(FRAMES)})")
    source_splits, target_splits = _read_splits(source_spec), _read_splits(target_spec)
    boxes = matching_boxes(source_splits[0].domain, target_splits[0].domain, config.size) if config.frame == "match" else (0, 0)
    config = replace(config, source_box=boxes[0], target_box=boxes[1])
    source = _to_tensors(source_spec, *source_splits, config.channels, config.size, config.source_box)
    target = _to_tensors(target_spec, *target_splits, config.channels, config.size, config.target_box)
    return source, target, config


def _read_splits(spec: str) -> tuple[DigitSet, DigitSet]:
    train, val = train_val(read_source(spec), seed=0)
    if not train.labelled or not val.labelled:
        raise InputError("domain adaptation needs a labelled source (its target labels are used for reporting)", spec)
    return train, val


def _to_tensors(spec: str, train: DigitSet, val: DigitSet, channels: int, size: int, box: int) -> DomainData:
    return DomainData(
        str(spec), train.domain,
        TensorImages.from_digitset(train, channels=channels, size=size, box=box),
        TensorImages.from_digitset(val, channels=channels, size=size, box=box),
    )


def save_run(run_dir: Path, config: AdaptConfig, source: DomainData, target: DomainData, result: AdaptResult, device: str) -> None:
    from diffadapt.diffusion.checkpoint import save_weights
    from diffadapt.viz.atomic import write_text_atomic

    run_dir.mkdir(parents=True, exist_ok=True)
    save_weights(run_dir / "model.safetensors", result.model.state_dict(), {"kind": ADAPT_KIND})
    document = {
        "kind": ADAPT_KIND,
        "config": config.to_dict(),
        "source": {"spec": source.spec, "domain": source.domain, "stats": result.source_stats.to_dict(),
                   "train_images": len(source.train), "val_images": len(source.val)},
        "target": {"spec": target.spec, "domain": target.domain, "stats": result.target_stats.to_dict(),
                   "train_images": len(target.train), "val_images": len(target.val)},
        "results": result_summary(result),
        "device": device,
        "torch": torch.__version__,
    }
    write_text_atomic(run_dir / "config.json", json.dumps(document, indent=2) + "\n")


SHIPPED_TARGETS = ("usps", "svhn")


def shipped_model(target: str) -> Path:
    """The DANN classifier shipped for a course target (see MODEL_CARD.md)."""
    from importlib import resources

    if target not in SHIPPED_TARGETS:
        raise InputError(f"no shipped model for target {target!r} (one of {', '.join(SHIPPED_TARGETS)})")
    path = Path(str(resources.files("diffadapt").joinpath("assets", f"adapt_{target}")))
    if not (path / "config.json").is_file():
        raise InputError(f"the shipped {target} adaptation model is missing from this installation", path)
    return path


def run_folders(path: str | Path) -> list[Path]:
    """The trained folders under a run: ``RUN`` itself if it holds config.json, else its ``seed*`` folders."""
    path = Path(path)
    if (path / "config.json").is_file():
        return [path]
    seeds = sorted(p for p in path.glob("seed*") if (p / "config.json").is_file())
    if not seeds:
        raise InputError("not an adaptation run (no config.json, no seed*/config.json)", path)
    return seeds


@dataclass
class LoadedRun:
    model: DigitClassifier
    config: AdaptConfig
    document: dict[str, Any]
    source_stats: DomainStats
    target_stats: DomainStats
    path: Path


def load_run(path: str | Path) -> LoadedRun:
    from diffadapt.diffusion.checkpoint import load_state_dict_strict, load_weights

    folder = run_folders(path)[0]
    config_path = folder / "config.json"
    try:
        document = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"config is not valid JSON ({exc})", config_path) from None
    if document.get("kind") != ADAPT_KIND:
        raise InputError(f"checkpoint is a {document.get('kind', 'unknown')} model, expected a {ADAPT_KIND}", config_path)
    config = AdaptConfig.from_dict(document["config"])
    model = DigitClassifier(config.network, config.channels, with_domain_head=config.mode == "dann", domain_dropout=config.domain_dropout)
    weights, _ = load_weights(folder / "model.safetensors")
    load_state_dict_strict(model, weights, folder / "model.safetensors")
    return LoadedRun(model.eval(), config, document, DomainStats.from_dict(document["source"]["stats"]),
                     DomainStats.from_dict(document["target"]["stats"]), folder)
