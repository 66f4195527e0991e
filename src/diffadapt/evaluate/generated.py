"""Scoring a folder of generated digits named ``{digit}_{index}.png``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from diffadapt.data.imageio import list_images, read_images
from diffadapt.errors import InputError
from diffadapt.evaluate.frechet import feature_statistics, frechet_distance
from diffadapt.evaluate.judge import judge_features
from diffadapt.images import nhwc_to_nchw, uint8_to_model


def read_generated_folder(folder: str | Path) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """uint8 (N, 3, 28, 28) images, labels from each file name's first character, and the names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("folder of generated images not found", folder)
    paths = list_images(folder)
    if not paths:
        raise InputError("folder holds no images", folder)
    labels = []
    for path in paths:
        if not path.name[0].isdigit():
            raise InputError("file name must start with the digit it shows (e.g. 3_017.png)", path)
        labels.append(int(path.name[0]))
    images = read_images(paths, progress=False)
    if images.shape[1:3] != (28, 28):
        raise InputError(f"generated digits must be 28x28, got {images.shape[1]}x{images.shape[2]}", paths[0])
    if images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)
    return nhwc_to_nchw(images), np.array(labels), [p.name for p in paths]


@dataclass
class DigitScores:
    per_class: dict[int, float]
    overall: float
    count: int
    frechet: float | None = None
    floor_halves: float | None = None
    floor_1000: float | None = None
    judge_accuracy: float | None = None
    extra: dict = field(default_factory=dict)

    def table(self) -> str:
        lines = ["digit  accuracy"]
        lines += [f"{d:>5}  {acc * 100:7.2f}%" for d, acc in self.per_class.items()]
        lines.append(f"  all  {self.overall * 100:7.2f}%  ({self.count} images, course classifier)")
        if self.judge_accuracy is not None:
            lines.append(f"judge classifier accuracy: {self.judge_accuracy * 100:.2f}%")
        if self.frechet is not None:
            lines.append(f"judge Fréchet distance to real test images: {self.frechet:.3f}")
            lines.append(f"  real-vs-real floor, two halves of the test set: {self.floor_halves:.3f}")
            lines.append(f"  real-vs-real floor, 1,000 real vs the rest:     {self.floor_1000:.3f}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


@torch.no_grad()
def classify(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """uint8 (N, 3, 28, 28) -> predicted labels with a classifier taking [-1, 1] input."""
    predictions = []
    for start in range(0, len(images), batch_size):
        x = uint8_to_model(images[start : start + batch_size])
        predictions.append(model(x).argmax(1))
    return torch.cat(predictions).numpy()


def score_digits(images: torch.Tensor, labels: np.ndarray, classifier: torch.nn.Module, judge=None) -> DigitScores:
    """Course-classifier accuracy per class and overall; with a judge, also its accuracy and the FD."""
    predictions = classify(classifier, images)
    per_class = {int(d): float((predictions[labels == d] == d).mean()) for d in np.unique(labels)}
    scores = DigitScores(per_class, float((predictions == labels).mean()), len(labels))
    if judge is not None:
        features, judge_predictions = judge_features(judge.model, images)
        mu, sigma = feature_statistics(features)
        scores.frechet = frechet_distance(mu, sigma, judge.mu, judge.sigma)
        scores.floor_halves = float(judge.config["floor_halves"])
        scores.floor_1000 = float(judge.config["floor_1000"])
        scores.judge_accuracy = float((judge_predictions == labels).mean())
    return scores
