"""A label-free estimate of a classifier's accuracy on images it has no labels for: average thresholded
confidence (ATC; Garg et al., "Leveraging unlabeled data to predict out-of-distribution performance",
ICLR 2022).

    s(x)  = a confidence score of the softmax p(x): max_k p_k (``max-confidence``) or the negative entropy
            sum_k p_k log p_k (``negative-entropy``, the paper's ATC-NE)
    t     : fit on labelled source val so that  mean_i [s(x_i) > t] = source val accuracy
    acc^  = mean_j [s(x~_j) > t]  over the unlabelled target images x~_j

The threshold is the only thing fit, on source images; target labels are never read. The estimate is as good
as "the share of confident target images tracks accuracy", which fails for shifts that make the model
confidently wrong: its measured error per pair is in benchmarks/RESULTS.md ("Adaptation that holds on data it has never seen").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch

from diffadapt.errors import InputError

Score = Literal["negative-entropy", "max-confidence"]
SCORES: tuple[str, ...] = get_args(Score)
ESTIMATE_SCORE: Score = "max-confidence"  # the score runs are calibrated with (chosen on the embedded pairs, RESULTS.md)
UNRELIABLE_BELOW = 0.8  # an estimate below this gets a one-line warning


def confidence_scores(logits: torch.Tensor, score: Score) -> torch.Tensor:
    """(N, K) logits -> (N,) float64 scores s(x), higher = more confident."""
    log_p = torch.log_softmax(logits.double(), dim=1)
    if score == "max-confidence":
        return log_p.max(1).values.exp()
    return (log_p.exp() * log_p).sum(1)


def fit_threshold(scores: torch.Tensor, accuracy: float) -> float:
    """The t with mean [scores > t] = accuracy (to one image): the (1 - accuracy) quantile of the scores.

    scores: (N,) source val scores; accuracy: the model's source val accuracy in [0, 1]."""
    count = scores.numel()
    above = round(accuracy * count)
    if above >= count:
        return -math.inf
    return float(scores.sort().values[count - above - 1])


def estimate_accuracy(scores: torch.Tensor, threshold: float) -> float:
    """The share of (N,) target scores above the threshold: the estimated accuracy in [0, 1]."""
    return float((scores > threshold).double().mean())


@dataclass(frozen=True)
class Calibration:
    """What the estimate needs of a model, fit once on its labelled source val images.

    Attributes:
        score: which confidence score s(x).
        threshold: t (``-inf`` when the model was right on every source val image).
        source_val_accuracy: the accuracy t reproduces.
        images: how many source val images it was fit on.
        fit_on: what those images were (for the record, e.g. ``source val (mnistm)``).
    """

    score: Score
    threshold: float
    source_val_accuracy: float
    images: int
    fit_on: str

    @classmethod
    def fit(cls, logits: torch.Tensor, labels: torch.Tensor, score: Score, fit_on: str) -> Calibration:
        """From (N, K) source val logits and their (N,) labels."""
        if len(labels) == 0:
            raise InputError("cannot calibrate the accuracy estimate on no source images")
        accuracy = float((logits.argmax(1) == labels.to(logits.device)).double().mean())
        return cls(score, fit_threshold(confidence_scores(logits, score), accuracy), accuracy, len(labels), fit_on)

    def estimate(self, logits: torch.Tensor) -> float:
        """The estimated accuracy on the images of (N, K) logits."""
        return estimate_accuracy(confidence_scores(logits, self.score), self.threshold)

    def to_dict(self) -> dict[str, Any]:
        # JSON has no infinity: a threshold below every score is written as null.
        return {"method": "atc", "score": self.score, "threshold": None if math.isinf(self.threshold) else self.threshold,
                "source_val_accuracy": self.source_val_accuracy, "images": self.images, "fit_on": self.fit_on}

    @classmethod
    def from_dict(cls, data: Any, source: Any = None) -> Calibration:
        """From a run's saved ``calibration`` section, checked."""
        if not isinstance(data, dict) or data.get("method") != "atc" or data.get("score") not in SCORES:
            raise InputError(f"calibration must be an ATC record with score one of {', '.join(SCORES)}", source)
        threshold, accuracy, images = data.get("threshold"), data.get("source_val_accuracy"), data.get("images")
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold)):
            raise InputError("calibration.threshold must be a finite number or null", source)
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0.0 <= accuracy <= 1.0:
            raise InputError("calibration.source_val_accuracy must be a number in 0..1", source)
        if isinstance(images, bool) or not isinstance(images, int) or images < 1:
            raise InputError("calibration.images must be a positive whole number", source)
        return cls(data["score"], -math.inf if threshold is None else float(threshold), float(accuracy), images, str(data.get("fit_on", "")))
