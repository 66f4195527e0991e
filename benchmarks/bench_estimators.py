"""Label-free accuracy estimates compared against the truth: which estimate `adapt predict` should print.

For each run and labelled folder (the folder syntax of bench_adapt_folder.py), the model is applied plain and
after each asked folder adaptation; every candidate estimate is computed from the same logits and compared
with the accuracy, which only this script reads. Candidates (defined here; the one chosen lives in ``adapt/estimate.py``):

- ``atc-mc`` / ``atc-ne``: average thresholded confidence (max-confidence / negative entropy), threshold fit
  on clean source val;
- ``*-ts``: the same after temperature scaling fit on source val (NLL);
- ``*-aug``: the threshold fit on source val under the strong augmentation of FixMatch (a shifted source);
- ``doc-ts``: difference of confidences, source val accuracy - (mean confidence on source val - on the folder),
  after temperature scaling; ``avgconf-ts``: the mean temperature-scaled confidence on the folder;
- ``cluster``: the share of folder images whose prediction is their nearest SHOT centroid in feature space;
  ``min-atc-cluster`` the smaller of that and ``atc-mc``;
- ``agree``: the share of folder images on which a second, independently trained run (``--second-run``, same
  method and data, another seed; adapted the same way) predicts the same label (Jiang et al., 2022: with
  calibrated ensembles the disagreement rate tracks the test error); ``min-atc-agree`` the smaller of that and
  ``atc-mc``. Both are n/a without ``--second-run``;
- ``cot``: confidence optimal transport (Lu et al., 2023), the balanced-label estimate ``adapt predict`` prints
  beside ATC (adapt/estimate.py); ``cot-ts`` the same after temperature scaling (the paper's first step); ``cott``: the share of folder images whose cost under that plan is at most a
  threshold fit on source val (the source val costs against its true one-hots; as many above it as errors);
- ``nuclear``: the nuclear norm of the (N, 10) softmax matrix over sqrt(N * 10) (Deng et al., 2023), uncalibrated.

    python benchmarks/bench_estimators.py --run runs/dev/fm_usps_in --folder usps-like=usps:val \\
        --folder usps-like-inverted=usps:val:invert --variants plain,shot,fixmatch \\
        [--second-run runs/dev/fm_usps_in_seed1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from bench_adapt_folder import folder_images, run_path
from common import machine

from diffadapt.adapt import augment
from diffadapt.adapt.estimate import (
    BALANCED_MAX_IMAGES,
    balanced_label_estimate,
    balanced_transport_costs,
    confidence_scores,
    estimate_accuracy,
    fit_threshold,
    label_shares,
    transport_costs,
)
from diffadapt.adapt.source_free.shot import cluster_centroids, hidden_features_of, nearest_centroid, unit_features
from diffadapt.adapt.stats import EVAL_BATCH, DomainStats, normalise
from diffadapt.adapt.trainer import predict_logits
from diffadapt.adapt.transductive import FolderAdaptConfig
from diffadapt.apps.adaptation.predict import adaptation_source, predict_images, target_tensors
from diffadapt.apps.adaptation.runs import load_run
from diffadapt.data.memory import TensorImages
from diffadapt.data.types import DigitSet


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 that minimises the NLL of softmax(logits / T) on labelled images (a 1-d search in log T)."""
    grid = torch.exp(torch.linspace(-3, 3, 601, dtype=torch.float64))
    logits, labels = logits.double().cpu(), labels.cpu()
    nll = torch.stack([torch.nn.functional.cross_entropy(logits / t, labels) for t in grid])
    return float(grid[int(nll.argmin())])


class SourceEvidence:
    """What the candidates may know of the model: labelled source val logits, clean and strongly augmented, and
    the folder's (N, 256) hidden features (for ``cluster``) and a second run's (N, 10) folder logits (for
    ``agree``; empty without one), both set by the caller."""

    def __init__(self, logits: torch.Tensor, labels: torch.Tensor, augmented: torch.Tensor) -> None:
        self.logits, self.labels, self.augmented = logits, labels, augmented
        self.accuracy = float((logits.argmax(1) == labels).double().mean())
        self.augmented_accuracy = float((augmented.argmax(1) == labels).double().mean())
        self.temperature = fit_temperature(logits, labels)
        self.target_features = torch.empty(0)
        self.second_logits = torch.empty(0)


def atc(score: str, temperature: bool = False, augmented: bool = False):
    def estimate(e: SourceEvidence, target: torch.Tensor) -> float:
        t = e.temperature if temperature else 1.0
        logits, accuracy = (e.augmented, e.augmented_accuracy) if augmented else (e.logits, e.accuracy)
        threshold = fit_threshold(confidence_scores(logits / t, score), accuracy)
        return estimate_accuracy(confidence_scores(target / t, score), threshold)
    return estimate


def doc(e: SourceEvidence, target: torch.Tensor) -> float:
    mean_conf = lambda z: float(confidence_scores(z / e.temperature, "max-confidence").mean())  # noqa: E731
    return e.accuracy - (mean_conf(e.logits) - mean_conf(target))


def average_confidence(e: SourceEvidence, target: torch.Tensor) -> float:
    return float(confidence_scores(target / e.temperature, "max-confidence").mean())


def cluster_agreement(e: SourceEvidence, target: torch.Tensor) -> float:
    """The share of folder images whose prediction is also their nearest SHOT centroid in feature space."""
    features = e.target_features
    centroids = cluster_centroids(features, torch.softmax(target, 1))
    return float((nearest_centroid(unit_features(features.double()), centroids) == target.argmax(1)).double().mean())


def min_atc_cluster(e: SourceEvidence, target: torch.Tensor) -> float:
    return min(atc("max-confidence")(e, target), cluster_agreement(e, target))


def agreement(e: SourceEvidence, target: torch.Tensor) -> float:
    if not len(e.second_logits):
        return float("nan")
    return float((e.second_logits.argmax(1) == target.argmax(1)).double().mean())


def min_atc_agreement(e: SourceEvidence, target: torch.Tensor) -> float:
    agree = agreement(e, target)
    return agree if np.isnan(agree) else min(atc("max-confidence")(e, target), agree)


def cot(temperature: bool):
    def estimate(e: SourceEvidence, target: torch.Tensor) -> float:
        return balanced_label_estimate(target, label_shares(e.labels, e.logits.shape[1]), e.temperature if temperature else 1.0)
    return estimate


def cott(e: SourceEvidence, target: torch.Tensor) -> float:
    """COT's costs thresholded like ATC: the threshold leaves as many source val costs (against the true
    one-hots) above it as source val errors; the estimate is the share of folder costs at or below it."""
    logits, labels = e.logits[:BALANCED_MAX_IMAGES], e.labels[:BALANCED_MAX_IMAGES]
    source_costs = transport_costs(torch.softmax(logits.double(), 1), labels).sort().values
    errors = int((logits.argmax(1) != labels).sum())
    threshold = float(source_costs[len(source_costs) - errors - 1]) if errors < len(source_costs) else -1.0
    costs = balanced_transport_costs(target, label_shares(e.labels, e.logits.shape[1]))
    return float((costs <= threshold).double().mean())


def nuclear_norm(e: SourceEvidence, target: torch.Tensor) -> float:
    p = torch.softmax(target.double(), 1)
    return float(torch.linalg.matrix_norm(p, ord="nuc") / np.sqrt(len(p) * p.shape[1]))


CANDIDATES = {
    "atc-mc": atc("max-confidence"), "atc-ne": atc("negative-entropy"),
    "atc-mc-ts": atc("max-confidence", temperature=True), "atc-ne-ts": atc("negative-entropy", temperature=True),
    "atc-mc-aug": atc("max-confidence", augmented=True), "atc-ne-aug": atc("negative-entropy", augmented=True),
    "doc-ts": doc, "avgconf-ts": average_confidence, "cluster": cluster_agreement, "min-atc-cluster": min_atc_cluster,
    "agree": agreement, "min-atc-agree": min_atc_agreement, "cot": cot(False), "cot-ts": cot(True), "cott": cott, "nuclear": nuclear_norm,
}


@torch.no_grad()
def strongly_augmented_logits(model, images: torch.Tensor, stats: DomainStats) -> torch.Tensor:
    """(N, 10) logits of the images under FixMatch's strong augmentation (the `-aug` candidates' harder source)."""
    model.eval()
    return torch.cat([model(augment.strong(normalise(images[i : i + EVAL_BATCH], stats))).float() for i in range(0, len(images), EVAL_BATCH)])


def folder_tensor(run, images: np.ndarray) -> TensorImages:
    """A folder's uint8 images as the run's model sees them; no labels."""
    return target_tensors(run, DigitSet(images, np.full(len(images), -1), run.document["target"]["domain"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True)
    parser.add_argument("--folder", action="append", required=True, metavar="NAME=SPEC:SPLIT[:TRANSFORM][:N]")
    parser.add_argument("--second-run", action="append", default=[],
                        help="per --run, in order: an independently trained twin whose agreement is the `agree` estimate")
    parser.add_argument("--variants", default="plain,shot")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    if args.second_run and len(args.second_run) != len(args.run):
        parser.error("give one --second-run per --run, or none")
    rows = []
    for index, run_name in enumerate(args.run):
        run = load_run(run_path(run_name))
        second = load_run(run_path(args.second_run[index])) if args.second_run else None
        source = adaptation_source(run, None)
        for item in args.folder:
            name, spec = item.split("=", 1)
            images, labels = folder_images(spec)
            data = folder_tensor(run, images)
            truth = torch.as_tensor(labels)
            for variant in args.variants.split(","):
                start = time.perf_counter()
                adapt = None if variant == "plain" else FolderAdaptConfig(method=variant)
                result = predict_images(run, data, adapt=adapt, progress=False)
                source_stats = run.source_stats if adapt is None else result.source_stats
                torch.manual_seed(0)
                evidence = SourceEvidence(
                    predict_logits(result.model, source.val.images, source_stats), source.val.labels,
                    strongly_augmented_logits(result.model, source.val.images, source_stats))
                evidence.target_features = hidden_features_of(result.model, data.images, result.stats.to(torch.device("cpu")))
                if second is not None:
                    evidence.second_logits = predict_images(second, folder_tensor(second, images), adapt=adapt, progress=False).logits
                accuracy = float((result.logits.argmax(1) == truth).double().mean())
                estimates = {key: fn(evidence, result.logits) for key, fn in CANDIDATES.items()}
                row = {"run": run_name, "folder": name, "images": len(labels), "variant": variant, "accuracy": accuracy,
                       "errors": {k: v - accuracy for k, v in estimates.items()}, "seconds": time.perf_counter() - start}
                rows.append(row)
                print(f"{run_name} {name} {variant}: accuracy {accuracy:.4f} " +
                      " ".join(f"{k} {v:+.3f}" for k, v in row["errors"].items()), flush=True)
    rows = [{**r, "errors": {k: v for k, v in r["errors"].items() if not np.isnan(v)}} for r in rows]
    keys = [k for k in CANDIDATES if all(k in r["errors"] for r in rows)]
    print(f"\nEstimate minus accuracy; machine: {machine()}\n")
    print("| run | folder | variant | accuracy | " + " | ".join(keys) + " |")
    print("|---|---|---|---|" + "---|" * len(keys))
    for r in rows:
        print(f"| {r['run']} | {r['folder']} | {r['variant']} | {r['accuracy']:.4f} | " + " | ".join(f"{r['errors'][k]:+.3f}" for k in keys) + " |")
    print("| mean abs error | | | | " + " | ".join(f"{np.mean([abs(r['errors'][k]) for r in rows]):.3f}" for k in keys) + " |")
    print("| max abs error | | | | " + " | ".join(f"{np.max([abs(r['errors'][k]) for r in rows]):.3f}" for k in keys) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
