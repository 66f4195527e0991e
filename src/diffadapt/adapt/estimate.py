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

A second estimate sees some of those confident errors, under an assumption the user must judge: confidence
optimal transport (COT; Lu et al., "Characterizing out-of-distribution error via optimal transport", NeurIPS
2023). If the folder's classes have the source val's shares pi, the softmax rows p_j should be movable onto
one-hot labels in those shares at little cost; a model that piles images into a wrong class cannot be:

    p       = softmax(logits), as the model gives it (temperature scaling on source val, the paper's first
              step, made it worse on the embedded pairs: RESULTS.md)
    c(p, y) = || p - e_y ||_inf                       (the cost of reading softmax row p as label y)
    W       = min over one-to-one assignments sigma of  mean_j c(p_j, y_sigma(j)),
              the labels y being N one-hots in the shares pi (largest-remainder counts)
    acc^    = 1 - W

It charges a folder whose classes really are unbalanced as if the model erred (real USPS: 16 % zeros), and it is
blind after SHOT, whose diversity term balances the predicted classes by design; RESULTS.md ("Confidence
optimal transport") has both measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from scipy.optimize import linear_sum_assignment

from diffadapt.errors import InputError
from diffadapt.settings import is_finite_number

Score = Literal["negative-entropy", "max-confidence"]
SCORES: tuple[str, ...] = get_args(Score)
# The values each score can take: max p in [1/C, 1] (0 allowed), sum p log p in [-log C, 0] for C <= 1000 classes.
SCORE_RANGES = {"max-confidence": (0.0, 1.0), "negative-entropy": (-math.log(1000), 0.0)}
MAX_CALIBRATION_IMAGES = 10**9  # far beyond any val split; 10**100 is a forged record
ESTIMATE_SCORE: Score = "max-confidence"  # the score runs are calibrated with (chosen on the embedded pairs, RESULTS.md)
UNRELIABLE_BELOW = 0.8  # an estimate below this gets a one-line warning
BALANCED_MAX_IMAGES = 2000  # the exact assignment is O(N^3): larger folders are estimated on a fixed subsample
BALANCED_SUBSAMPLE_SEED = 0


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


def label_counts(shares: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` labels split into the classes in proportion to (K,) ``shares`` (summing to 1), by largest remainder."""
    raw = shares.double() * n
    counts = raw.floor().long()
    remainder_order = torch.argsort(-(raw - counts), stable=True)
    counts[remainder_order[: n - int(counts.sum())]] += 1
    return counts


def transport_costs(probabilities: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(N,) costs c(p_j, y_sigma(j)) = ||p_j - e_y||_inf under the optimal one-to-one assignment sigma of the
    (N, K) softmax rows to the (N,) labels (an exact linear assignment)."""
    p = probabilities.double()
    top2 = p.topk(2, dim=1).values  # K >= 2
    is_max = p == top2[:, :1]
    largest_other = torch.where(is_max, top2[:, 1:2], top2[:, :1])  # max_{k != y} p_k for each y
    per_class = torch.maximum(1.0 - p, largest_other)  # (N, K): c(p_j, e_y) for every class y
    cost = per_class[:, labels].numpy()
    rows, columns = linear_sum_assignment(cost)
    return torch.from_numpy(cost[rows, columns])


def label_shares(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """(K,) float64 share of each class among (N,) labels: COT's pi."""
    return torch.bincount(labels.cpu(), minlength=classes).double() / len(labels)


def balanced_transport_costs(logits: torch.Tensor, shares: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """The per-image costs of COT's optimal assignment (module docstring) for (N, K) logits and (K,) label shares
    pi, the logits divided by ``temperature`` first (1 in the shipped estimate); folders beyond
    BALANCED_MAX_IMAGES images are assigned on a fixed random subsample of that many."""
    if len(logits) > BALANCED_MAX_IMAGES:
        order = torch.randperm(len(logits), generator=torch.Generator().manual_seed(BALANCED_SUBSAMPLE_SEED))
        logits = logits[order[:BALANCED_MAX_IMAGES]]
    counts = label_counts(shares, len(logits))
    labels = torch.repeat_interleave(torch.arange(len(counts)), counts)
    return transport_costs(torch.softmax(logits.double().cpu() / temperature, 1), labels)


def balanced_label_estimate(logits: torch.Tensor, shares: torch.Tensor, temperature: float = 1.0) -> float:
    """COT's accuracy estimate 1 - W: one minus the mean of :func:`balanced_transport_costs`."""
    return 1.0 - float(balanced_transport_costs(logits, shares, temperature).mean())


@dataclass(frozen=True)
class Calibration:
    """What the estimate needs of a model, fit once on its labelled source val images.

    Attributes:
        score: which confidence score s(x).
        threshold: t (``-inf`` when the model was right on every source val image).
        source_val_accuracy: the accuracy t reproduces.
        images: how many source val images it was fit on.
        fit_on: what those images were (for the record, e.g. ``source val (mnistm)``).
        label_shares: the share of each class among those images (COT's pi; None in runs saved before it).
    """

    score: Score
    threshold: float
    source_val_accuracy: float
    images: int
    fit_on: str
    label_shares: tuple[float, ...] | None = None

    @classmethod
    def fit(cls, logits: torch.Tensor, labels: torch.Tensor, score: Score, fit_on: str) -> Calibration:
        """From (N, K) source val logits and their (N,) labels."""
        if len(labels) == 0:
            raise InputError("cannot calibrate the accuracy estimate on no source images")
        accuracy = float((logits.argmax(1) == labels.to(logits.device)).double().mean())
        return cls(score, fit_threshold(confidence_scores(logits, score), accuracy), accuracy, len(labels), fit_on,
                   tuple(label_shares(labels, logits.shape[1]).tolist()))

    def estimate(self, logits: torch.Tensor) -> float:
        """The estimated accuracy on the images of (N, K) logits."""
        return estimate_accuracy(confidence_scores(logits, self.score), self.threshold)

    def balanced_estimate(self, logits: torch.Tensor) -> float | None:
        """COT's estimate on (N, K) logits if the folder's classes had the source val's shares; None for a
        calibration saved without those shares."""
        if self.label_shares is None:
            return None
        if len(self.label_shares) != logits.shape[1]:
            raise InputError(f"calibration.label_shares has {len(self.label_shares)} classes, the model {logits.shape[1]}")
        return balanced_label_estimate(logits, torch.tensor(self.label_shares, dtype=torch.float64))

    def to_dict(self) -> dict[str, Any]:
        # JSON has no infinity: a threshold below every score is written as null.
        record = {"method": "atc", "score": self.score, "threshold": None if math.isinf(self.threshold) else self.threshold,
                  "source_val_accuracy": self.source_val_accuracy, "images": self.images, "fit_on": self.fit_on}
        if self.label_shares is not None:
            record["label_shares"] = list(self.label_shares)
        return record

    @classmethod
    def from_dict(cls, data: Any, source: Any = None) -> Calibration:
        """From a run's saved ``calibration`` section, checked."""
        if not isinstance(data, dict) or data.get("method") != "atc" or data.get("score") not in SCORES:
            raise InputError(f"calibration must be an ATC record with score one of {', '.join(SCORES)}", source)
        threshold, accuracy, images = data.get("threshold"), data.get("source_val_accuracy"), data.get("images")
        low, high = SCORE_RANGES[data["score"]]
        if threshold is not None and not (is_finite_number(threshold) and low <= threshold <= high):
            raise InputError(f"calibration.threshold must be a number in {low:g}..{high:g} (the range of {data['score']} scores) or null",
                             source)
        if not is_finite_number(accuracy) or not 0.0 <= accuracy <= 1.0:
            raise InputError("calibration.source_val_accuracy must be a number in 0..1", source)
        if isinstance(images, bool) or not isinstance(images, int) or not 1 <= images <= MAX_CALIBRATION_IMAGES:
            raise InputError(f"calibration.images must be a whole number in 1..{MAX_CALIBRATION_IMAGES:,}", source)
        return cls(data["score"], -math.inf if threshold is None else float(threshold), float(accuracy), images, str(data.get("fit_on", "")),
                   _label_shares(data.get("label_shares"), source))


def _label_shares(value: Any, source: Any) -> tuple[float, ...] | None:
    """A saved ``calibration.label_shares``, checked: None, or 2 to 1000 finite shares >= 0 that sum to 1."""
    if value is None:
        return None
    message = "calibration.label_shares must be a list of 2 to 1000 numbers >= 0 that sum to 1"
    if not isinstance(value, list) or not 2 <= len(value) <= 1000:
        raise InputError(message, source)
    if any(not is_finite_number(v) or v < 0 for v in value):
        raise InputError(message, source)
    if abs(sum(value) - 1.0) > 1e-6:
        raise InputError(message, source)
    return tuple(float(v) for v in value)
