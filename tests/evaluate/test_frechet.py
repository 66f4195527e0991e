"""The Fréchet distance against closed-form cases."""

from __future__ import annotations

import numpy as np
import pytest

from diffadapt.errors import InputError
from diffadapt.evaluate.frechet import checked_distance, feature_statistics, frechet_between, frechet_distance


def test_identical_gaussians_are_at_distance_zero():
    mu, sigma = np.array([1.0, -2.0]), np.array([[2.0, 0.3], [0.3, 1.0]])
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-9)


def test_mean_shift_adds_its_squared_length():
    sigma = np.eye(3)
    assert frechet_distance(np.zeros(3), sigma, np.array([1.0, 2.0, 2.0]), sigma) == pytest.approx(9.0)


def test_diagonal_covariances_in_closed_form():
    # d^2 = sum_i (sqrt(a_i) - sqrt(b_i))^2 for diagonal covariances and equal means
    a, b = np.array([4.0, 1.0, 9.0]), np.array([1.0, 1.0, 4.0])
    expected = float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(expected)


def test_from_samples_approaches_the_population_value():
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, size=(20000, 2))
    y = rng.normal(0.0, 2.0, size=(20000, 2)) + np.array([3.0, 0.0])
    expected = 9.0 + 2 * (2.0 - 1.0) ** 2  # mean shift 3, std 1 vs 2 in two dimensions
    assert frechet_between(x, y) == pytest.approx(expected, rel=0.03)


def test_statistics_need_two_samples():
    with pytest.raises(ValueError):
        feature_statistics(np.zeros((1, 4)))


def test_a_distance_that_is_not_finite_or_clearly_negative_is_refused_naming_the_file():
    mu, sigma = np.zeros(2), np.eye(2)
    with pytest.raises(InputError, match=r"^judge/model.safetensors: .*not finite"):
        frechet_distance(np.array([np.inf, 0.0]), sigma, mu, sigma, source="judge/model.safetensors")
    with pytest.raises(InputError, match=r"^judge/model.safetensors: .*not finite"):
        frechet_distance(mu, np.full((2, 2), np.nan), mu, sigma, source="judge/model.safetensors")
    with pytest.raises(InputError, match="negative"):  # a negative-definite "covariance": d^2 = 2 - 2 - 2 Tr(...) < 0
        frechet_distance(mu, -np.eye(2) * 100, mu, sigma, source="judge/model.safetensors")


def test_rounding_below_zero_is_clipped_and_more_is_not():
    assert checked_distance(-1e-9, 10.0, None) == 0.0  # 1e-10 of the positive terms: rounding in sqrtm
    with pytest.raises(InputError, match="negative"):
        checked_distance(-1e-3, 10.0, None)
    with pytest.raises(InputError, match="not finite"):
        checked_distance(float("inf"), float("inf"), None)
