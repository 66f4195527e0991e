"""Fréchet distance between two Gaussians fitted to feature sets (the FID formula, any feature space).

    d^2 = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import linalg

from diffadapt.errors import InputError

# A distance below zero by less than this share of the sum of its positive terms (|mu_1 - mu_2|^2 +
# Tr S_1 + Tr S_2) is rounding in sqrtm and is clipped to 0; anything further below is not a distance.
ROUNDING = 1e-6


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) features -> mean (D,) and covariance (D, D), in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"need (N >= 2, D) features, got {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     source: str | Path | None = None) -> float:
    """The distance, >= 0; a result that is not finite or clearly below 0 (overflowing features, statistics
    that are no Gaussian's) is an InputError naming ``source``, the file the statistics came from."""
    if not all(np.isfinite(a).all() for a in (mu1, sigma1, mu2, sigma2)):
        # sqrtm would fail with a traceback (its Schur step refuses NaN and infinity), not with a score.
        raise InputError("the Fréchet distance cannot be computed: the features or the real statistics are not finite", source)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # Near-singular products: regularise both covariances slightly, as the FID reference code does.
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    positive = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2))
    return checked_distance(positive - 2.0 * float(np.trace(covmean)), positive, source)


def checked_distance(distance: float, positive: float, source: str | Path | None) -> float:
    """``distance`` as a number fit to print and to write as JSON: never inf, NaN or a negative value."""
    if not np.isfinite(distance) or not np.isfinite(positive):
        raise InputError(f"the Fréchet distance is not finite ({distance}): the features or the real statistics overflow", source)
    if distance < 0:
        if distance < -ROUNDING * max(positive, 0.0):
            raise InputError(f"the Fréchet distance is negative ({distance:.6g}): a covariance is not a valid one", source)
        return 0.0
    return distance


def frechet_between(features_a: np.ndarray, features_b: np.ndarray) -> float:
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))
