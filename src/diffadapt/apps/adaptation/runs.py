"""Adaptation run folders: reading the two domains, training every seed and saving it, loading it back.

A run folder ``RUN/seed{S}/`` holds ``model.safetensors`` (the extractor and label classifier),
``config.json`` (the AdaptConfig, both domains' specs and normalisation statistics, the measured
accuracies and the per-epoch history), ``metrics.csv`` and ``curves.png``. ``adapt train --seeds 0,1,2
--out RUN`` writes one such folder per seed; :func:`train_runs` is that flow, for the CLI, the report and
the benchmarks alike.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import Any, Union

import torch

from diffadapt.adapt.config import AdaptConfig
from diffadapt.adapt.estimate import ESTIMATE_SCORE, Calibration
from diffadapt.adapt.modules.networks import DigitClassifier
from diffadapt.adapt.stats import DomainStats
from diffadapt.adapt.trainer import AdaptResult, predict_logits, result_summary, train_adaptation
from diffadapt.data import DigitSet, TensorImages, read_source, train_val
from diffadapt.data.layout import matching_boxes
from diffadapt.errors import InputError
from diffadapt.io import (
    CONFIG_FILE,
    check_output_files,
    check_weight_magnitudes,
    load_state_dict_strict,
    load_weights,
    read_run_config,
    require_file,
    save_weights,
    write_json_atomic,
)
from diffadapt.settings import short_repr
from diffadapt.viz.curves import CURVES_FILE, METRICS_FILE, MetricsLog

ADAPT_KIND = "diffadapt/digit-adaptation"
SEED_FOLDER = re.compile(r"seed[0-9]+")  # one trained seed of a run: seed0, seed1, ...
FORMAT = 2  # 2: method modules (no domain head in model.safetensors); 1: the first release's DANN runs
WEIGHTS_FILE = "model.safetensors"
METRIC_COLUMNS = ("epoch", "step", "lr", "loss", "source_accuracy", "domain_accuracy", "reversal", "mask_rate",
                  "pseudo_label_loss", "source_val_accuracy", "target_val_accuracy")


@dataclass
class DomainData:
    spec: str
    domain: str
    train: TensorImages
    val: TensorImages


DomainSource = Union[str, Path, DigitSet, dict]  # a source spec (path or embedded name), or images in memory


def load_domain(spec: DomainSource, channels: int, size: int, box: int = 0) -> DomainData:
    """A domain's train and val splits as tensors of the asked channels and size (val never trains);
    ``box`` > 0 puts each image in a centred box of that side (see data/layout.py)."""
    return _to_tensors(spec, *_read_splits(spec), channels, size, box)


def load_pair(source_spec: DomainSource, target_spec: DomainSource, config: AdaptConfig) -> tuple[DomainData, DomainData, AdaptConfig]:
    """Both domains of a run, prepared as ``config`` asks; with ``frame="match"`` the boxes that bring the
    two domains' digits to one height are resolved here and returned in the config.

    A domain is a source spec (any format ``data.read_source`` reads, or an embedded domain's name) or images
    in memory: a :class:`DigitSet` (its train split; val is carved out of it) or ``{split: DigitSet}``.
    """
    source_splits, target_splits = _read_splits(source_spec), _read_splits(target_spec)
    boxes = matching_boxes(source_splits[0].domain, target_splits[0].domain, config.size) if config.frame == "match" else (0, 0)
    config = replace(config, source_box=boxes[0], target_box=boxes[1])
    source = _to_tensors(source_spec, *source_splits, config.channels, config.size, config.source_box)
    target = _to_tensors(target_spec, *target_splits, config.channels, config.size, config.target_box)
    return source, target, config


def _read_splits(spec: DomainSource) -> tuple[DigitSet, DigitSet]:
    if isinstance(spec, DigitSet):
        splits = {"train": spec}
    elif isinstance(spec, dict):
        splits = spec
    else:
        splits = read_source(spec)
    named = spec if isinstance(spec, (str, Path)) else None
    where = named if named is not None else f"the images in memory (domain {getattr(next(iter(splits.values()), None), 'domain', '?')})"
    train, val = train_val(splits, seed=0, source=named)
    if len(train) == 0 or len(val) == 0:
        raise InputError(f"too few labelled images for a train / val split ({len(train)} / {len(val)}); "
                         "adaptation holds out a fifth of each class for val", where)
    if not train.labelled or not val.labelled:
        raise InputError("domain adaptation needs labelled domains (a target's labels are used for reporting only)", where)
    return train, val


def _to_tensors(spec: DomainSource, train: DigitSet, val: DigitSet, channels: int, size: int, box: int) -> DomainData:
    text = str(spec) if isinstance(spec, (str, Path)) else f"in-memory {train.domain} images"
    return DomainData(
        text, train.domain,
        TensorImages.from_digitset(train, channels=channels, size=size, box=box),
        TensorImages.from_digitset(val, channels=channels, size=size, box=box),
    )


def pair_name(source: DomainData, target: DomainData) -> str:
    return f"{source.domain} -> {target.domain}"


def history_log(history: Sequence[dict[str, Any]], title: str) -> MetricsLog:
    log = MetricsLog(METRIC_COLUMNS, title=title)
    for record in history:
        log.add(**{k: v for k, v in record.items() if k in METRIC_COLUMNS})
    return log


def calibrate(model: DigitClassifier, source_val: TensorImages, source_stats: DomainStats, fit_on: str) -> Calibration:
    """The label-free estimate's calibration of ``model``, fit on labelled source val images (adapt/estimate.py)."""
    logits = predict_logits(model, source_val.images, source_stats)
    return Calibration.fit(logits, source_val.labels, ESTIMATE_SCORE, fit_on)


def save_run(run_dir: Path, config: AdaptConfig, source: DomainData, target: DomainData, result: AdaptResult, device: str,
             calibration: Calibration | None = None, adapted_from: dict[str, Any] | None = None) -> None:
    """Weights, metrics.csv and curves.png, then config.json (written last: a folder with one is complete).

    ``calibration``: the accuracy estimate's (default: fit here on the source val split); ``adapted_from``:
    for a model adapted to a folder, the run it came from and the adaptation's settings."""
    if calibration is None:
        calibration = calibrate(result.model, source.val, result.source_stats, f"source val ({source.domain})")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_weights(run_dir / WEIGHTS_FILE, result.model.state_dict(), {"kind": ADAPT_KIND})
    log = history_log(result.history, f"{pair_name(source, target)}, {config.method} ({config.recipe}), seed {config.seed}")
    log.write(run_dir)
    log.plot(run_dir / CURVES_FILE, x="epoch", series=("loss", "source_accuracy", "domain_accuracy", "mask_rate",
                                                        "source_val_accuracy", "target_val_accuracy"))
    document = {
        "kind": ADAPT_KIND,
        "format": FORMAT,
        "config": config.to_dict(),
        "source": {"spec": source.spec, "domain": source.domain, "stats": result.source_stats.to_dict(),
                   "train_images": len(source.train), "val_images": len(source.val)},
        "target": {"spec": target.spec, "domain": target.domain, "stats": result.target_stats.to_dict(),
                   "train_images": len(target.train), "val_images": len(target.val)},
        "results": result_summary(result),
        "calibration": calibration.to_dict(),
        **({"adapted_from": adapted_from} if adapted_from else {}),
        "device": device,
        "torch": torch.__version__,
    }
    write_json_atomic(run_dir / CONFIG_FILE, document)


def check_free(out: Path, seeds: Sequence[int], resume: bool = False) -> None:
    """No seed of ``seeds`` is listed twice or trained in ``out`` yet (a run is never overwritten; with
    ``resume``, a trained seed is allowed and later kept, see :func:`trained_seeds`), and every file a seed
    writes can be written, so no seed is left half-saved."""
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", out)
    repeated = [s for s in seeds if list(seeds).count(s) > 1]
    if repeated:
        raise InputError(f"seed {repeated[0]} is listed twice")
    existing = [s for s in seeds if (out / f"seed{s}" / CONFIG_FILE).exists()]
    if existing and not resume:
        raise InputError(f"seed{existing[0]} already trained here; choose another --out (or --resume to train only the seeds missing)", out)
    for seed in seeds:
        folder = out / f"seed{seed}"
        if folder.exists() and not folder.is_dir():
            raise InputError("exists and is not a folder", folder)
        if seed not in existing:
            check_output_files(*(folder / name for name in (WEIGHTS_FILE, METRICS_FILE, CURVES_FILE, CONFIG_FILE)))


def trained_seeds(out: Path, seeds: Sequence[int], config: AdaptConfig, source: DomainData, target: DomainData) -> list[int]:
    """The seeds of ``seeds`` already trained in ``out`` by this same run (for ``--resume``).

    A seed folder counts once its config.json exists (save_run writes it last); its saved settings and both
    domains' specs must equal this run's for that seed, else an error naming the first key that differs:
    resuming never mixes two runs in one folder. A seed folder without config.json was killed while training
    or saving: it is trained again from its first step (progress within a seed is not checkpointed)."""
    done = []
    for seed in seeds:
        folder = out / f"seed{seed}"
        if not (folder / CONFIG_FILE).exists():
            continue
        document, saved = read_run_document(folder)
        expected = replace(config, seed=seed)
        # (key, saved value, this run's value) of every setting and domain spec that differs
        differing = [(f.name, getattr(saved, f.name), getattr(expected, f.name)) for f in fields(AdaptConfig)
                     if getattr(saved, f.name) != getattr(expected, f.name)]
        differing += [(f"{domain}.spec", document[domain]["spec"], data.spec) for domain, data in (("source", source), ("target", target))
                      if document[domain]["spec"] != data.spec]
        if differing:
            key, was, now = differing[0]
            raise InputError(f"was trained with {key} = {was!r}, this run has {now!r}: --resume continues the same run only", folder / CONFIG_FILE)
        done.append(seed)
    return done


def train_runs(
    source_spec: DomainSource, target_spec: DomainSource, config: AdaptConfig, out: Path, seeds: Sequence[int], device: torch.device,
    progress: bool = True, report: Any = print, pair: tuple[DomainData, DomainData, AdaptConfig] | None = None,
    resume: bool = False,
) -> list[AdaptResult]:
    """Train ``config`` once per seed into ``out/seed{S}/`` (the ``adapt train`` flow).

    ``pair``: the domains already read by :func:`load_pair` for this config's recipe (to read them once for
    several methods); ``report`` receives one line per finished seed. ``resume``: keep the seeds this same run
    already saved (:func:`trained_seeds`) and train the rest; the results list only the seeds trained now.
    """
    check_free(out, seeds, resume)
    source, target, config = pair if pair is not None else load_pair(source_spec, target_spec, config)
    done = trained_seeds(out, seeds, config, source, target) if resume else []
    results = []
    for seed in seeds:
        if seed in done:
            report(f"seed {seed}: already trained in {out / f'seed{seed}'}, kept")
            continue
        seeded = replace(config, seed=seed)
        result = train_adaptation(seeded, source.train, source.val, target.train, target.val, device, progress=progress,
                                  description=f"{pair_name(source, target)}: {config.method} ({config.recipe}), seed {seed}")
        save_run(out / f"seed{seed}", seeded, source, target, result, device.type)
        last_step = "".join(f", {name} {accuracy:.4f}" for name, accuracy in result.last_step_target_val.items())
        report(f"seed {seed}: target val accuracy {result.target_val_accuracy:.4f}"
               f"{f' ({seeded.final_weights}; at the last step{last_step})' if last_step else ''}, source val {result.source_val_accuracy:.4f}, "
               f"{result.train_seconds:.1f} s ({result.steps} steps{', CUDA graph' if result.cuda_graph else ''}"
               f"{f', epoch {result.chosen_epoch} chosen by {seeded.selection}' if result.chosen_epoch else ''})")
        results.append(result)
    return results


def recalibrate(path: str | Path, source_spec: DomainSource | None = None) -> list[tuple[Path, Calibration]]:
    """Fit (again) the accuracy estimate's calibration of every seed folder under ``path`` on its source's val
    split (``source_spec``, default the spec the run was trained from), prepared as in training; rewrites
    each config.json whole. For runs saved before runs carried a calibration."""
    fitted = []
    for folder in run_folders(path):  # every seed fitted before any is written: a bad seed leaves all as they were
        run = load_run(folder)
        document, config = run.document, run.config
        source = load_domain(source_spec if source_spec is not None else document["source"]["spec"], config.channels, config.size,
                             config.source_box)
        fitted.append((folder, document, calibrate(run.model, source.val, run.source_stats, f"source val ({source.domain})")))
    for folder, document, calibration in fitted:
        write_json_atomic(folder / CONFIG_FILE, {**document, "calibration": calibration.to_dict()})
    return [(folder, calibration) for folder, _, calibration in fitted]


SHIPPED_TARGETS = ("usps", "svhn")


def shipped_model(target: str) -> Path:
    """The adaptation classifier shipped for a course target (see MODEL_CARD.md)."""
    if target not in SHIPPED_TARGETS:
        raise InputError(f"no shipped model for target {target!r} (one of {', '.join(SHIPPED_TARGETS)})")
    path = Path(str(resources.files("diffadapt").joinpath("assets", f"adapt_{target}")))
    if not (path / CONFIG_FILE).is_file():
        raise InputError(f"the shipped {target} adaptation model is missing from this installation", path)
    return path


def run_folders(path: str | Path) -> list[Path]:
    """The trained folders under a run: ``RUN`` itself if it holds config.json, else its ``seed{S}`` folders.

    A ``seed{S}`` entry that is not a finished seed folder (a file, a broken link, a folder without config.json:
    a seed cut off while training) is refused, naming it: a table or calibration silently over fewer seeds than
    the run shows would be wrong without a word."""
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return [path]
    if not path.is_dir():
        raise InputError("run folder not found", path)
    seeds = sorted(p for p in path.iterdir() if SEED_FOLDER.fullmatch(p.name))
    if not seeds:
        raise InputError("not an adaptation run (no config.json, no seed*/config.json)", path)
    for seed in seeds:
        require_file(seed / CONFIG_FILE, "a seed's config", "is not a finished seed folder (no config.json); finish it with "
                     "adapt train --resume or remove it", seed)
    return seeds


@dataclass
class LoadedRun:
    model: DigitClassifier
    config: AdaptConfig
    document: dict[str, Any]
    source_stats: DomainStats
    target_stats: DomainStats
    path: Path


def read_run_document(folder: Path) -> tuple[dict[str, Any], AdaptConfig]:
    """A seed folder's config.json, checked: the kind, the settings, both domains' sections."""
    source = folder / CONFIG_FILE
    document = read_run_config(folder)
    if document.get("kind") != ADAPT_KIND:
        raise InputError(f"checkpoint's kind is {short_repr(document.get('kind'))}, expected {ADAPT_KIND!r}", source)
    for section in ("config", "source", "target"):
        if not isinstance(document.get(section), dict):
            raise InputError(f"config has no {section!r} object", source)
    for domain in ("source", "target"):
        for key in ("spec", "domain"):
            if not isinstance(document[domain].get(key), str):
                raise InputError(f"{domain}.{key} must be text", source)
    return document, AdaptConfig.from_document(document["config"], source)


def load_run(path: str | Path) -> LoadedRun:
    """A trained classifier in eval mode, with its settings and both domains' statistics (the first seed of
    a multi-seed run)."""
    folder = run_folders(path)[0]
    document, config = read_run_document(folder)
    source = folder / CONFIG_FILE
    model = DigitClassifier(config.network, config.channels, config.instance_norm)
    run_format = document.get("format", 1)
    if run_format not in (1, FORMAT) or isinstance(run_format, bool) or not isinstance(run_format, int):
        raise InputError(f"format must be 1 or {FORMAT} (this version's runs), got {run_format!r:.40}", source)
    legacy = run_format == 1
    weights, _ = load_weights(folder / WEIGHTS_FILE, None if legacy else model.state_dict())
    if legacy:
        # The first release kept DANN's domain discriminator inside the classifier; prediction never used it.
        weights = {k: v for k, v in weights.items() if not k.startswith("domain.")}
    check_weight_magnitudes(weights, folder / WEIGHTS_FILE)
    load_state_dict_strict(model, weights, folder / WEIGHTS_FILE)
    return LoadedRun(model.eval(), config, document, DomainStats.from_dict(document["source"].get("stats"), config.channels, source),
                     DomainStats.from_dict(document["target"].get("stats"), config.channels, source), folder)
