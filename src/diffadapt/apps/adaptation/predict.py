"""Predicting labels for a folder of target images: the graded ``image_name,label`` CSV, a label-free
estimate of its accuracy beside it (``OUT.estimate.json``), and optionally adapting the model to the folder
first (``--adapt``, see adapt/transductive.py)."""

from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import torch

from diffadapt.adapt.estimate import UNRELIABLE_BELOW, Calibration
from diffadapt.adapt.stats import DomainStats
from diffadapt.adapt.trainer import AdaptResult, predict_logits
from diffadapt.adapt.transductive import BALANCING_METHODS, FolderAdaptConfig, adapt_to_folder
from diffadapt.apps.adaptation.runs import (
    DomainData,
    DomainSource,
    LoadedRun,
    calibrate,
    check_free,
    load_domain,
    load_run,
    save_run,
)
from diffadapt.data.embedded import EMBEDDED_DOMAINS
from diffadapt.data.formats.folders import read_unlabelled_folder
from diffadapt.data.imageio import IMAGE_SUFFIXES
from diffadapt.data.memory import TensorImages
from diffadapt.data.types import DigitSet
from diffadapt.errors import InputError
from diffadapt.io import CONFIG_FILE, check_not_an_input, check_output_files, overlaps, write_json_atomic, write_text_atomic

Normalisation = Literal["target", "folder"]
ESTIMATE_SUFFIX = ".estimate.json"


@dataclass
class Prediction:
    """What a prediction wrote and what it estimates of itself."""

    rows: int
    csv_path: Path
    estimate_path: Path
    estimated_accuracy: float
    calibration: Calibration
    adapted: bool
    adapt_seconds: float = 0.0
    saved_run: Path | None = None
    balanced_estimate: float | None = None  # COT's, if the folder's classes had the source's shares

    @property
    def unreliable(self) -> bool:
        return is_unreliable(self.estimated_accuracy, self.balanced_estimate)

    def summary(self) -> str:
        """One line for the terminal, a second with the balanced-label estimate where there is one, and a
        warning when either is below UNRELIABLE_BELOW."""
        line = (f"label-free accuracy estimate {self.estimated_accuracy:.3f} (ATC, {self.calibration.score}, "
                f"threshold fit on {self.calibration.fit_on}; written to {self.estimate_path})")
        if self.balanced_estimate is not None:
            line += (f"\nif the folder's classes are as balanced as the source's: {self.balanced_estimate:.3f} "
                     "(confidence optimal transport)")
        if self.estimated_accuracy < UNRELIABLE_BELOW:
            line += f"\nwarning: the estimate is below {UNRELIABLE_BELOW}: this model is unreliable on this folder"
        elif self.unreliable:
            line += (f"\nwarning: the balanced-label estimate is below {UNRELIABLE_BELOW}: the predicted classes are far "
                     "from the source's shares, so either this folder's classes are that unbalanced or the model is "
                     "confidently wrong on a share of it")
        return line


def is_unreliable(estimate: float, balanced_estimate: float | None) -> bool:
    """Whether a prediction gets the warning: either estimate below UNRELIABLE_BELOW."""
    return min(estimate, 1.0 if balanced_estimate is None else balanced_estimate) < UNRELIABLE_BELOW


def estimate_path_for(out_csv: str | Path) -> Path:
    """``OUT.csv`` -> ``OUT.estimate.json`` beside it."""
    out_csv = Path(out_csv)
    if out_csv.name in ("", ".", ".."):
        raise InputError("expected a file name for the csv", out_csv)
    return out_csv.with_name(out_csv.stem + ESTIMATE_SUFFIX)


def adaptation_source(run: LoadedRun, spec: DomainSource | None) -> DomainData:
    """The labelled source beside a folder adaptation (FixMatch trains on it; both methods refit the estimate
    on its val split): ``spec``, or by default the embedded domain of the run's source, which ships with the
    package, else the source the run was trained from. Prepared as the run prepares its source."""
    if spec is None:
        domain = run.document["source"]["domain"]
        spec = domain if domain in EMBEDDED_DOMAINS else run.document["source"]["spec"]
    return load_domain(spec, run.config.channels, run.config.size, run.config.source_box)


def run_calibration(run: LoadedRun) -> Calibration:
    """The run's saved calibration, or for runs saved before there was one, a fit on the val split of the
    source :func:`adaptation_source` finds (the embedded domain of its source is a stand-in for its own source
    val, and ``fit_on`` says which)."""
    saved = run.document.get("calibration")
    if saved is not None:
        return Calibration.from_dict(saved, run.path / CONFIG_FILE)
    try:
        source = adaptation_source(run, None)
    except InputError as exc:
        raise InputError(f"the run has no calibration for the accuracy estimate and its source cannot be read ({exc}); "
                         "fit one with: diffadapt adapt calibrate RUN --source SRC", run.path / CONFIG_FILE) from None
    return calibrate(run.model, source.val, run.source_stats, f"{source.spec} val (the run has no calibration of its own)")


@dataclass
class FolderPrediction:
    """The predicting model's logits on the images, and what the estimate and a saved run need."""

    logits: torch.Tensor  # (N, 10) float32, on the CPU
    model: Any
    stats: DomainStats
    calibration: Calibration
    adapt_seconds: float = 0.0
    source: DomainData | None = None  # with adapting: the labelled source it adapted beside
    source_stats: DomainStats | None = None  # and that source's statistics


def target_tensors(run: LoadedRun, digits: DigitSet) -> TensorImages:
    """Unlabelled target digits as the run prepares its target: its channels, size and digit box (uint8)."""
    return TensorImages.from_digitset(digits, channels=run.config.channels, size=run.config.size, box=run.config.target_box)


def predict_images(
    run: LoadedRun, data: TensorImages, normalisation: Normalisation = "target", adapt: FolderAdaptConfig | None = None,
    adapt_source: DomainSource | None = None, device: torch.device | None = None, progress: bool = True,
) -> FolderPrediction:
    """Logits for target images (uint8 (N, C, H, W), prepared as the run prepares its target), with the
    calibration of the model that made them; with ``adapt`` the model is first adapted to the images."""
    if normalisation not in ("target", "folder"):
        raise InputError(f"normalisation must be 'target' or 'folder', got {normalisation!r}")
    device = device or torch.device("cpu")
    if adapt is None:
        stats = run.target_stats if normalisation == "target" else DomainStats.of(data)
        logits = predict_logits(run.model.to(device), data.images.to(device), stats.to(device)).cpu()
        return FolderPrediction(_finite(logits, run), run.model, stats, run_calibration(run))
    stats = DomainStats.of(data)  # adapting is transductive: the folder's own statistics, always
    source = adaptation_source(run, adapt_source)
    source_stats = DomainStats.of(source.train)
    start = time.perf_counter()
    model = adapt_to_folder(run.model, run.config, data, stats, adapt, device, source.train, source_stats, progress)
    seconds = time.perf_counter() - start
    calibration = calibrate(model, source.val.to(device), source_stats.to(device), f"source val ({source.spec}) after adapting")
    logits = predict_logits(model, data.images.to(device), stats.to(device)).cpu()
    return FolderPrediction(_finite(logits, run), model, stats, calibration, seconds, source, source_stats)


def _finite(logits: torch.Tensor, run: LoadedRun) -> torch.Tensor:
    """The logits, unless some are not finite (weights that overflow): then an error naming the weights."""
    if not bool(torch.isfinite(logits).all()):
        raise InputError("the model's outputs are not finite on these images (its weights overflow)", run.path / "model.safetensors")
    return logits


def predict_folder(
    image_dir: str | Path, out_csv: str | Path, ckpt: str | Path, normalisation: Normalisation = "target",
    adapt: FolderAdaptConfig | None = None, adapt_source: DomainSource | None = None, save_adapted: str | Path | None = None,
    device: torch.device | None = None, progress: bool = True,
) -> Prediction:
    """Write ``image_name,label`` (header, one row per image, sorted by name) and the estimate's json.

    normalisation: ``target`` uses the target domain's training statistics stored in the checkpoint;
    ``folder`` uses the statistics of the images being predicted (for a domain the run never saw). With
    ``adapt`` the model is first adapted to the folder (its own statistics, always) and ``save_adapted``
    keeps it as a run folder.
    """
    device = device or torch.device("cpu")
    estimate_path = estimate_path_for(out_csv)
    check_output_files(out_csv, estimate_path)
    for written, name in ((out_csv, "the output csv"), (estimate_path, "the estimate json")):
        check_not_an_input(written, [image_dir], name, IMAGE_SUFFIXES)
    if save_adapted is not None:
        if adapt is None:
            raise InputError("--save-adapted needs --adapt")
        check_free(Path(save_adapted), [adapt.seed])
        for written in (Path(out_csv), estimate_path):
            if overlaps(written, Path(save_adapted)):
                raise InputError(f"--save-adapted and the output {written} overlap: give the adapted run a folder of its own", save_adapted)
    run = load_run(ckpt)
    digits = read_unlabelled_folder(image_dir, domain=run.document["target"]["domain"], progress=progress)
    data = target_tensors(run, digits)
    result = predict_images(run, data, normalisation, adapt, adapt_source, device, progress)
    saved_run = None
    if adapt is not None and save_adapted is not None and result.source is not None:
        saved_run = _save_adapted(Path(save_adapted), run, adapt, result, data, Path(image_dir), digits.domain, device)
    labels = result.logits.argmax(1)
    estimated = result.calibration.estimate(result.logits)
    balancing = adapt is not None and adapt.method in BALANCING_METHODS
    balanced = None if balancing else result.calibration.balanced_estimate(result.logits)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["image_name", "label"])
    writer.writerows(sorted(zip(digits.names or [], labels.tolist())))
    write_text_atomic(out_csv, buffer.getvalue())
    document: dict[str, Any] = {
        "images": len(labels), "estimated_accuracy": estimated,
        "balanced_label_estimate": balanced, "balanced_label_estimate_method": _balanced_note(result.calibration, balancing),
        "unreliable": is_unreliable(estimated, balanced), "checkpoint": str(run.path), "adapted": adapt is not None, "calibration": result.calibration.to_dict(),
        "predicted_class_counts": torch.bincount(labels, minlength=10).tolist(),
    }
    if adapt is not None:
        document["adaptation"] = {**asdict(adapt), "seconds": result.adapt_seconds, "saved_run": str(saved_run) if saved_run else None}
    write_json_atomic(estimate_path, document)
    return Prediction(len(labels), Path(out_csv), estimate_path, estimated, result.calibration, adapt is not None, result.adapt_seconds,
                      saved_run, balanced)


def _balanced_note(calibration: Calibration, balancing: bool) -> str:
    """What the json's ``balanced_label_estimate`` is, or why it is null."""
    if balancing:
        return "none: the adaptation method balances the predicted classes by design, which this estimate cannot see past"
    if calibration.label_shares is None:
        return "none: the run's calibration has no source label shares (refit it with: diffadapt adapt calibrate RUN)"
    return "confidence optimal transport (Lu et al., 2023) of the softmax to one-hot labels in the source val label shares"


def _save_adapted(out: Path, run: LoadedRun, adapt: FolderAdaptConfig, result: FolderPrediction, data: TensorImages, folder: Path,
                  domain: str, device: torch.device) -> Path:
    """The adapted model as a normal run folder ``out/seed{S}/`` (loadable by --ckpt; not by adapt tsne, which
    would need the folder's images again); its target section is the folder, whose val split is the folder
    itself, unlabelled (no accuracy is recorded). Its config's seed is the adaptation's (the folder's name);
    ``adapted_from`` keeps the run it started from, with that run's own seed."""
    source = result.source
    folder_domain = DomainData(str(folder), domain, data, data)
    summary = AdaptResult(result.model, result.source_stats, result.stats, float("nan"), float("nan"),
                          steps=adapt.steps, train_seconds=result.adapt_seconds)
    target_run = out / f"seed{adapt.seed}"
    save_run(target_run, replace(run.config, seed=adapt.seed), source, folder_domain, summary, device.type, result.calibration,
             adapted_from={"checkpoint": str(run.path), "checkpoint_seed": run.config.seed, **asdict(adapt)})
    return target_run
