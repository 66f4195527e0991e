"""Classification accuracy score (Ravuri & Vinyals, NeurIPS 2019): how well a classifier trained on generated
images alone classifies real ones.

    CAS       = accuracy on real test images of a classifier trained only on the generated images
    CAS_real  = the same classifier and recipe trained on as many real training images (same class counts)
    ratio     = CAS / CAS_real

Samples that are all alike teach a classifier little about the real variety of a class, so they score low
even when every one of them is recognisable (which the course's accuracy rewards); samples that cover the
real data's variety score near 1. The classifier is small and fixed (:class:`ScoreNet`) and the recipe is
fixed (:class:`ScoreConfig`), so scores are comparable across models and samplers; each score is the mean
over ``seeds`` trainings.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from diffadapt.data.memory import TensorImages
from diffadapt.data.types import NUM_CLASSES
from diffadapt.errors import InputError
from diffadapt.evaluate.judge import random_shift
from diffadapt.images import uint8_to_model
from diffadapt.settings import Settings, number

MAX_SCORE_SEEDS = 10  # each seed is one more classifier trained on the samples (and one on real images)


class ScoreNet(nn.Module):
    """(B, 3, 28, 28) in [-1, 1] -> (B, 10) logits: three 3x3 conv-BN-ReLU layers (32, 64, 128 channels, 2x2
    pooling between), global average pooling, one linear layer."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.body = nn.Sequential(*block(in_channels, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, 128),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(128, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@dataclass(frozen=True)
class ScoreConfig(Settings):
    """The fixed training recipe of the score's classifier."""

    epochs: int = number(15, at_least=1, at_most=1000, help="passes over the training images")
    batch_size: int = number(50, at_least=2, at_most=4096, help="images per step")
    lr: float = number(3e-3, above=0.0, at_most=1.0, help="AdamW one-cycle peak learning rate")
    weight_decay: float = number(5e-4, at_least=0.0, at_most=1.0, help="AdamW weight decay")
    max_shift: int = number(2, at_least=0, at_most=8, help="random shift augmentation in pixels")


@dataclass
class AccuracyScore:
    """CAS of the generated images and of the same number of real images, over seeds."""

    generated: list[float]
    real: list[float]
    seeds: list[int]
    train_images: int
    test_images: int
    config: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return statistics.mean(self.generated) / statistics.mean(self.real)

    def summary(self) -> str:
        def text(values: list[float]) -> str:
            spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
            return f"{statistics.mean(values):.3f}{spread}"

        return (f"classification accuracy score: {text(self.generated)} trained on the {self.train_images} generated images, "
                f"{text(self.real)} on {self.train_images} real ones; ratio {self.ratio:.3f} "
                f"(test: {self.test_images} real images, seeds {','.join(map(str, self.seeds))})")

    def to_dict(self) -> dict:
        return {"generated": self.generated, "real": self.real, "ratio": self.ratio, "seeds": self.seeds,
                "train_images": self.train_images, "test_images": self.test_images, "config": self.config}


def train_score_net(images: torch.Tensor, labels: torch.Tensor, config: ScoreConfig, seed: int) -> ScoreNet:
    """Train :class:`ScoreNet` on uint8 (N, 3, 28, 28) images with labels (N,); deterministic for a seed (CPU)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = ScoreNet(images.shape[1])
    steps_per_epoch = max(1, len(images) // config.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.epochs * steps_per_epoch)
    x_all = uint8_to_model(images)
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(images), generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            x = x_all[index]
            x = random_shift(x, generator, config.max_shift) if config.max_shift else x
            loss = F.cross_entropy(model(x), labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    return model.eval()


@torch.no_grad()
def accuracy_on(model: ScoreNet, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    predictions = torch.cat([model(uint8_to_model(images[i : i + batch_size])).argmax(1) for i in range(0, len(images), batch_size)])
    return float((predictions == labels).float().mean())


def matching_real_subset(real_labels: torch.Tensor, wanted_labels: torch.Tensor, seed: int) -> torch.Tensor:
    """Indices of real images with the same number per class as ``wanted_labels``, drawn with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for cls in range(NUM_CLASSES):
        need = int((wanted_labels == cls).sum())
        pool = torch.nonzero(real_labels == cls).flatten()
        if need > len(pool):
            raise InputError(f"the real training images have {len(pool)} of class {cls}, fewer than the {need} generated ones")
        picks.append(pool[torch.randperm(len(pool), generator=generator)[:need]])
    return torch.cat(picks)


def classification_accuracy_score(
    generated: torch.Tensor, generated_labels: torch.Tensor, real_train: torch.Tensor, real_train_labels: torch.Tensor,
    real_test: torch.Tensor, real_test_labels: torch.Tensor, seeds: tuple[int, ...] = (0, 1, 2), config: ScoreConfig = ScoreConfig(),
    real_scores: list[float] | None = None,
) -> AccuracyScore:
    """CAS of ``generated`` (uint8 (N, 3, 28, 28) with labels) against real test images, beside the same recipe
    on N real training images of the same class counts. Runs on the CPU (a few seconds per 1,000 images and
    seed). ``real_scores``: the real side, when already measured for these seeds and class counts."""
    for name, images in (("generated", generated), ("real training", real_train), ("real test", real_test)):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1:] != (3, 28, 28):
            raise InputError(f"{name} images must be uint8 (N, 3, 28, 28), got {tuple(images.shape)} {images.dtype}")
    if len(generated) < 2 * NUM_CLASSES:
        raise InputError(f"the accuracy score needs at least {2 * NUM_CLASSES} generated images, got {len(generated)}")
    scores_generated = [accuracy_on(train_score_net(generated, generated_labels, config, seed), real_test, real_test_labels) for seed in seeds]
    if real_scores is None:
        real_scores = real_baseline(generated_labels, real_train, real_train_labels, real_test, real_test_labels, seeds, config)
    return AccuracyScore(scores_generated, list(real_scores), list(seeds), len(generated), len(real_test), config.to_dict())


def real_baseline(generated_labels: torch.Tensor, real_train: torch.Tensor, real_train_labels: torch.Tensor, real_test: torch.Tensor,
                  real_test_labels: torch.Tensor, seeds: tuple[int, ...] = (0, 1, 2), config: ScoreConfig = ScoreConfig()) -> list[float]:
    """The real side of the score: per seed, the classifier trained on real images of ``generated_labels``'
    class counts (drawn with the seed), tested on the real test images."""
    scores = []
    for seed in seeds:
        subset = matching_real_subset(real_train_labels, generated_labels, seed)
        scores.append(accuracy_on(train_score_net(real_train[subset], real_train_labels[subset], config, seed), real_test, real_test_labels))
    return scores


def real_reference(source_splits: dict, limit_test: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(train images, train labels, test images, test labels) as uint8 (N, 3, 28, 28) from a source's splits:
    its ``test`` split (else ``val``) is the real test set; ``limit_test`` > 0 keeps its first images."""
    if "train" not in source_splits or not ({"test", "val"} & set(source_splits)):
        raise InputError("the accuracy score needs real images with a train split and a test (or val) split")
    test_split = source_splits.get("test") or source_splits["val"]
    train = TensorImages.from_digitset(source_splits["train"], channels=3, size=28)
    test = TensorImages.from_digitset(test_split, channels=3, size=28)
    if not bool((train.labels >= 0).all() and (test.labels >= 0).all()):
        raise InputError("the accuracy score needs labelled real images")
    keep = slice(0, limit_test if limit_test > 0 else len(test))
    return train.images, train.labels, test.images[keep], test.labels[keep]
