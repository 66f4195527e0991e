"""The embedded default domains: real sources, deterministic for a seed, all ten classes."""

from __future__ import annotations

import numpy as np
import pytest

from diffadapt.data import EMBEDDED_DOMAINS, load_embedded
from diffadapt.data.embedded import mnist_digits


@pytest.mark.parametrize("name", EMBEDDED_DOMAINS)
def test_shapes_classes_and_split(name):
    splits = load_embedded(name)
    assert set(splits) == {"train", "val"}
    for digits in splits.values():
        assert digits.images.shape[1:3] == (28, 28)
        assert digits.images.shape[3] == (3 if name in ("mnistm", "svhn") else 1)
        assert (digits.class_counts() > 0).all()
        assert digits.images.std() > 20, "images must not be blank"
    ratio = len(splits["val"]) / (len(splits["train"]) + len(splits["val"]))
    assert 0.19 < ratio < 0.21


@pytest.mark.parametrize("name", ["mnistm", "svhn"])
def test_deterministic_for_a_seed(name):
    a, b, c = load_embedded(name, seed=5), load_embedded(name, seed=5), load_embedded(name, seed=6)
    np.testing.assert_array_equal(a["train"].images, b["train"].images)
    assert not np.array_equal(a["train"].images, c["train"].images)


def test_mnistm_is_ganins_blend_of_the_mnist_digits():
    digits, labels = mnist_digits()
    mnist = load_embedded("mnist")["train"]
    mnistm = load_embedded("mnistm")["train"]
    np.testing.assert_array_equal(mnist.labels, mnistm.labels)
    # |background - digit|: where the digit is full white, the output is 255 - background, so the
    # pixel-wise max over channels can only reach 255 at stroke pixels if the background is black there.
    strokes = mnist.images[:, :, :, 0] == 255
    background_only = mnist.images[:, :, :, 0] == 0
    assert mnistm.images[strokes].mean() != mnistm.images[background_only].mean()
    assert len(digits) == 5000 and np.bincount(labels).tolist() == [500] * 10
