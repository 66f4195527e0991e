"""Scoring generated digits, the one flow behind ``digits evaluate``, the report and the benchmarks: the
course's classifier (when its weights are given), our judge (accuracy, Fréchet distance), and the
classification accuracy score against real images (when a real source is given)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffadapt.data import read_source
from diffadapt.evaluate.accuracy_score import classification_accuracy_score, real_reference
from diffadapt.evaluate.generated import DigitScores, read_generated_folder, score_digits
from diffadapt.evaluate.judge import load_judge
from diffadapt.evaluate.lenet import load_course_classifier
from diffadapt.io import SHIPPED


def score_images(images: torch.Tensor, labels: np.ndarray, classifier: str | Path | None = None, judge: str | Path | None = SHIPPED,
                 real: str | Path | None = None, score_seeds: tuple[int, ...] = (0, 1, 2)) -> DigitScores:
    """Scores of uint8 (N, 3 or 1, 28, 28) images with (N,) labels in 0..9.

    classifier: the course's ``Classifier.pth`` (None: no course accuracy); judge: a judge run folder,
    "default" for the shipped one, None for none; real: a labelled source with train and test (or val)
    splits for the classification accuracy score (None: no score).
    """
    if images.shape[1] == 1:  # a gray model's digits: the classifiers and the judge read RGB, gray is R = G = B
        images = images.expand(-1, 3, -1, -1)
    course = load_course_classifier(classifier) if classifier else None
    loaded_judge = load_judge(None if str(judge) == SHIPPED else judge) if judge else None
    accuracy_score = None
    if real:
        reference = real_reference(read_source(real, progress=False))
        accuracy_score = classification_accuracy_score(images, torch.as_tensor(labels), *reference, seeds=score_seeds)
    return score_digits(images, np.asarray(labels), course, loaded_judge, accuracy_score)


def evaluate_folder(folder: str | Path, classifier: str | Path | None = None, judge: str | Path | None = SHIPPED,
                    real: str | Path | None = None, score_seeds: tuple[int, ...] = (0, 1, 2)) -> DigitScores:
    """:func:`score_images` of a folder of ``{digit}_*.png`` files (the digit is the name's first character)."""
    images, labels, _ = read_generated_folder(folder)
    return score_images(images, labels, classifier, judge, real, score_seeds)
