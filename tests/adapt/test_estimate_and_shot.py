"""The label-free accuracy estimates (ATC, and COT's balanced-label estimate) and SHOT's parts, against
hand-computed values, and SHOT beating source-only on the rotated two moons of test_methods_adapt.py."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from diffadapt.adapt.estimate import (
    BALANCED_MAX_IMAGES,
    Calibration,
    balanced_label_estimate,
    confidence_scores,
    estimate_accuracy,
    fit_threshold,
    label_counts,
    transport_costs,
)
from diffadapt.adapt.methods import Batch, TrainingProgress
from diffadapt.adapt.source_free.shot import SHOT, cluster_centroids, diversity_loss, nearest_centroid
from diffadapt.errors import InputError
from tests.adapt.test_methods_adapt import moons


def test_threshold_reproduces_the_source_accuracy():
    scores = torch.tensor([0.1, 0.9, 0.5, 0.7, 0.3], dtype=torch.float64)
    # 3 of 5 right: t is the score below the top three (0.3), and exactly three scores lie above it.
    assert fit_threshold(scores, 0.6) == pytest.approx(0.3)
    assert estimate_accuracy(scores, fit_threshold(scores, 0.6)) == pytest.approx(0.6)
    assert fit_threshold(scores, 1.0) == -math.inf and estimate_accuracy(scores, -math.inf) == 1.0
    assert estimate_accuracy(scores, fit_threshold(scores, 0.0)) == 0.0


def test_scores_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]]))
    assert confidence_scores(logits, "max-confidence").tolist() == pytest.approx([0.5, 1 / 3])
    expected = [0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25), math.log(1 / 3)]
    assert confidence_scores(logits, "negative-entropy").tolist() == pytest.approx(expected)


def test_calibration_estimates_its_own_source_exactly_and_round_trips():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(400, 10, generator=generator) * 3
    labels = torch.randint(0, 10, (400,), generator=generator)
    labels[:200] = logits[:200].argmax(1)  # about 55 % right
    calibration = Calibration.fit(logits, labels, "max-confidence", "test")
    accuracy = float((logits.argmax(1) == labels).float().mean())
    assert calibration.source_val_accuracy == pytest.approx(accuracy)
    assert calibration.estimate(logits) == pytest.approx(accuracy, abs=1 / 400)
    assert Calibration.from_dict(calibration.to_dict()) == calibration
    assert sum(calibration.label_shares) == pytest.approx(1.0) and len(calibration.label_shares) == 10


@pytest.mark.parametrize("record", [None, [], {"method": "atc", "score": "nope"}, {"method": "atc", "score": "max-confidence", "threshold": "x"},
                                    {"method": "atc", "score": "max-confidence", "threshold": 0.5, "source_val_accuracy": 1.5, "images": 3},
                                    {"method": "atc", "score": "max-confidence", "threshold": float("nan"), "source_val_accuracy": 0.5, "images": 3},
                                    {"method": "atc", "score": "max-confidence", "threshold": 0.5, "source_val_accuracy": 0.5, "images": True},
                                    *[{"method": "atc", "score": "max-confidence", "threshold": 0.5, "source_val_accuracy": 0.5, "images": 3,
                                       "label_shares": shares}
                                      for shares in ("x", [1.0], [0.5, 0.6], [float("nan"), 1.0], [-0.5, 1.5], [True, 0.0], [0.5] * 2000)]])
def test_a_bad_calibration_record_is_refused(record):
    with pytest.raises(InputError, match="calibration"):
        Calibration.from_dict(record, "config.json")


def test_transport_costs_and_the_balanced_estimate_by_hand():
    p = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.0, 0.0, 1.0]], dtype=torch.float64)
    # Labels 0, 1, 1: row 0 -> 0 costs max(1 - 0.9, 0.1) = 0.1, row 1 -> 1 costs max(0.3, 0.2) = 0.3, and the
    # confident class-2 row must take the other 1: max(1 - 0, 1.0) = 1.0. No other assignment is cheaper.
    assert transport_costs(p, torch.tensor([0, 1, 1])).tolist() == pytest.approx([0.1, 0.3, 1.0])
    assert balanced_label_estimate(torch.log(p), torch.tensor([1 / 3, 2 / 3, 0.0])) == pytest.approx(1 - 1.4 / 3)
    # Shares 0.5 / 0.3 / 0.2 of 7: floors 3 / 2 / 1, the one left goes to the largest remainder (0.5 of class 0).
    assert label_counts(torch.tensor([0.5, 0.3, 0.2]), 7).tolist() == [4, 2, 1]


def test_the_balanced_estimate_sees_confident_errors_that_atc_cannot():
    """A synthetic shift: a model confidently right on its source (unsure where it errs) sends 30 % of the
    target's classes 0-2 to class 3, confidently. ATC reads full confidence as full accuracy; COT charges the images class 3 cannot hold."""
    generator = torch.Generator().manual_seed(0)
    source_labels = torch.arange(1000) % 10
    source_logits = 8 * nn.functional.one_hot(source_labels, 10).double() + torch.rand(1000, 10, generator=generator, dtype=torch.float64)
    source_logits[:50] = torch.rand(50, 10, generator=generator, dtype=torch.float64)  # unsure, mostly wrong
    calibration = Calibration.fit(source_logits, source_labels, "max-confidence", "test")
    truth = torch.arange(1000) % 10
    predicted = truth.clone()
    wrong = (truth < 3) & (torch.rand(1000, generator=generator) < 0.3)
    predicted[wrong] = 3
    target_logits = 8 * nn.functional.one_hot(predicted, 10).double() + torch.rand(1000, 10, generator=generator, dtype=torch.float64)
    accuracy = float((predicted == truth).double().mean())
    assert calibration.estimate(target_logits) - accuracy > 0.05  # blind to the confident errors
    assert abs(calibration.balanced_estimate(target_logits) - accuracy) <= 0.01


def test_the_balanced_estimate_of_a_large_folder_is_a_fixed_subsample():
    logits = torch.randn(BALANCED_MAX_IMAGES + 500, 10, generator=torch.Generator().manual_seed(0)) * 3
    shares = torch.full((10,), 0.1, dtype=torch.float64)
    assert balanced_label_estimate(logits, shares) == balanced_label_estimate(logits.clone(), shares)


def test_diversity_loss_by_hand():
    logits = torch.log(torch.tensor([[0.9, 0.1], [0.1, 0.9]]))  # mean prediction (0.5, 0.5)
    assert float(diversity_loss(logits)) == pytest.approx(math.log(0.5))
    same = torch.log(torch.tensor([[0.9, 0.1], [0.9, 0.1]]))
    assert float(diversity_loss(same)) == pytest.approx(0.9 * math.log(0.9) + 0.1 * math.log(0.1))


def test_centroids_by_hand():
    # Two tight clusters on the axes; soft labels that lean the right way: each centroid is its cluster's
    # unit feature [g, 1] / ||[g, 1]||, and every point's nearest centroid is its own cluster's.
    features = torch.tensor([[3.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    probabilities = torch.tensor([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    centroids = cluster_centroids(features, probabilities)
    root = math.sqrt(10.0)
    assert centroids.tolist() == [pytest.approx([3 / root, 0.0, 1 / root], abs=1e-6), pytest.approx([0.0, 3 / root, 1 / root], abs=1e-6)]
    unit = torch.nn.functional.normalize(torch.cat([features, torch.ones(3, 1)], 1), dim=1)
    assert nearest_centroid(unit, centroids).tolist() == [0, 0, 1]


class MoonsModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.extractor = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.classifier = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.extractor(x))


def test_shot_beats_source_only_on_rotated_moons_and_never_moves_the_hypothesis():
    torch.manual_seed(0)
    xs, ys = moons(600, 0)
    xt, _ = moons(600, 100, degrees=40)
    xv, yv = moons(600, 200, degrees=40)
    model = MoonsModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(500):
        index = torch.randint(0, 600, (64,))
        loss = nn.functional.cross_entropy(model(xs[index]), ys[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        source_only = float((model(xv).argmax(1) == yv).float().mean())
    hypothesis = model.classifier[-1].weight.detach().clone()
    model.train()
    shot = SHOT(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    schedule = TrainingProgress(torch.tensor(0.0), torch.tensor(0.0))
    for step in range(300):
        if step % 10 == 0:
            with torch.no_grad():
                features = model.classifier[:-1](model.extractor(xt))
                shot.centroids = cluster_centroids(features, model.classifier[-1](features).softmax(1))
        index = torch.randint(0, 600, (64,))
        loss, metrics = shot(model, Batch(xt[index], torch.full((64,), -1), xt[index]), schedule)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        adapted = float((model(xv).argmax(1) == yv).float().mean())
    assert torch.equal(model.classifier[-1].weight, hypothesis)
    assert set(metrics) == set(SHOT.metric_names)
    assert adapted > source_only + 0.05, (source_only, adapted)
