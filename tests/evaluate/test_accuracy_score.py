"""The classification accuracy score: deterministic for a seed, and it ranks copies of one image per class
far below a varied real set."""

from __future__ import annotations

import pytest
import torch

from diffadapt.data import load_embedded
from diffadapt.evaluate.accuracy_score import ScoreConfig, classification_accuracy_score, real_reference

QUICK = ScoreConfig(epochs=4)


@pytest.fixture(scope="module")
def reference():
    train_images, train_labels, test_images, test_labels = real_reference(load_embedded("mnistm"), limit_test=400)
    return train_images, train_labels, test_images, test_labels


def varied_real_set(reference, per_class: int = 30):
    images, labels = reference[0], reference[1]
    pick = torch.cat([torch.nonzero(labels == c).flatten()[-per_class:] for c in range(10)])  # not the images the real side draws first
    return images[pick], labels[pick]


def test_same_seed_same_score(reference):
    generated, labels = varied_real_set(reference)
    a = classification_accuracy_score(generated, labels, *reference, seeds=(3,), config=QUICK)
    b = classification_accuracy_score(generated, labels, *reference, seeds=(3,), config=QUICK)
    assert a.generated == b.generated and a.real == b.real


def test_copies_of_one_image_per_class_score_far_below_a_varied_set(reference):
    varied, labels = varied_real_set(reference)
    firsts = torch.stack([varied[labels == c][0] for c in range(10)])
    copies = firsts.repeat_interleave(30, dim=0)
    varied_score = classification_accuracy_score(varied, labels, *reference, seeds=(0,), config=QUICK)
    copies_score = classification_accuracy_score(copies, torch.arange(10).repeat_interleave(30), *reference, seeds=(0,), config=QUICK)
    assert varied_score.ratio > 0.7
    assert copies_score.ratio < 0.5 * varied_score.ratio, (copies_score.summary(), varied_score.summary())
