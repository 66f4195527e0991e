"""Scoring a folder of generated digits named ``{digit}_{index}.png``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffadapt.data.formats.checks import require_inside, resolved
from diffadapt.data.imageio import list_images, read_images
from diffadapt.errors import InputError
from diffadapt.evaluate.accuracy_score import AccuracyScore
from diffadapt.evaluate.frechet import feature_statistics, frechet_distance
from diffadapt.evaluate.judge import LoadedJudge, judge_features
from diffadapt.images import nhwc_to_nchw, uint8_to_model

# {digit}_{index}: one ASCII digit ([0-9]: a regex \d would also take '٣'), then the index; "10_001" and "3_1_2" are refused.
GENERATED_NAME = re.compile(r"([0-9])_([0-9]+)")


def read_generated_folder(folder: str | Path) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """uint8 (N, 3, 28, 28) images, labels from each file name (``{digit}_{index}.png``), and the names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("folder of generated images not found", folder)
    paths = list_images(folder)
    if not paths:
        raise InputError("folder holds no images", folder)
    labels = []
    root = resolved(folder)
    for path in paths:
        require_inside(path, folder, root)
        name = GENERATED_NAME.fullmatch(path.stem)
        if name is None:
            raise InputError("file name must be the digit it shows, '_' and an index (e.g. 3_017.png)", path)
        labels.append(int(name.group(1)))
    images = read_images(paths, progress=False)
    if images.shape[1:3] != (28, 28):
        raise InputError(f"generated digits must be 28x28, got {images.shape[1]}x{images.shape[2]}", paths[0])
    if images.shape[3] == 1:
        images = np.repeat(images, 3, axis=3)
    return nhwc_to_nchw(images), np.array(labels), [p.name for p in paths]


@dataclass
class DigitScores:
    """Scores of N generated digits; each part is None when its scorer was not given.

    Attributes:
        count: images scored.
        per_class, overall: the course classifier's accuracy per digit and overall.
        judge_accuracy, frechet: our judge's accuracy and its Fréchet distance to real test images, with the
            real-vs-real floors (two halves of the test set; N real images vs the rest).
        accuracy_score: the classification accuracy score (evaluate/accuracy_score.py).
    """

    count: int
    per_class: dict[int, float] | None = None
    overall: float | None = None
    judge_accuracy: float | None = None
    frechet: float | None = None
    floor_halves: float | None = None
    floor_at_n: float | None = None
    accuracy_score: AccuracyScore | None = None

    def table(self) -> str:
        lines = []
        if self.per_class is not None:
            lines.append("digit  accuracy")
            lines += [f"{d:>5}  {acc * 100:7.2f}%" for d, acc in self.per_class.items()]
            lines.append(f"  all  {self.overall * 100:7.2f}%  ({self.count} images, course classifier)")
        else:
            lines.append(f"{self.count} images (no course classifier given: --classifier Classifier.pth adds its accuracy)")
        if self.judge_accuracy is not None:
            lines.append(f"judge classifier accuracy: {self.judge_accuracy * 100:.2f}%")
        if self.frechet is not None:
            lines.append(f"judge Fréchet distance to real test images: {self.frechet:.3f}")
            lines.append(f"  real-vs-real floor, two halves of the test set: {self.floor_halves:.3f}")
            if self.floor_at_n is not None:
                lines.append(f"  real-vs-real floor, {self.count:,} real vs the rest: {self.floor_at_n:.3f}")
        if self.accuracy_score is not None:
            lines.append(self.accuracy_score.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "accuracy_score"}
        data["accuracy_score"] = self.accuracy_score.to_dict() if self.accuracy_score is not None else None
        return data


@torch.no_grad()
def classify(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    """uint8 (N, 3, 28, 28) -> predicted labels with a classifier taking [-1, 1] input."""
    return torch.cat([model(uint8_to_model(images[i : i + batch_size])).argmax(1) for i in range(0, len(images), batch_size)]).numpy()


def score_digits(images: torch.Tensor, labels: np.ndarray, classifier: torch.nn.Module | None = None, judge: LoadedJudge | None = None,
                 accuracy_score: AccuracyScore | None = None) -> DigitScores:
    """Scores of uint8 (N, 3, 28, 28) images of the given labels: the course classifier's accuracy per class
    and overall (when given), the judge's accuracy and Fréchet distance (when given)."""
    scores = DigitScores(len(labels), accuracy_score=accuracy_score)
    if classifier is not None:
        predictions = classify(classifier, images)
        scores.per_class = {int(d): float((predictions[labels == d] == d).mean()) for d in np.unique(labels)}
        scores.overall = float((predictions == labels).mean())
    if judge is not None:
        if len(labels) < 2:
            raise InputError(f"the Fréchet distance needs at least 2 images, got {len(labels)} (--no-judge scores one)")
        features, judge_predictions = judge_features(judge.model, images)
        scores.frechet = frechet_distance(*feature_statistics(features), judge.mu, judge.sigma, source=judge.path)
        scores.floor_halves = float(judge.config["floor_halves"])
        floor = judge.config.get("floors_by_size", {}).get(str(len(labels)))
        scores.floor_at_n = float(floor) if floor is not None else None
        scores.judge_accuracy = float((judge_predictions == labels).mean())
    return scores
