"""Each method beats source-only on a shift where the answer is known: Ganin et al.'s inter-twinning moons,
the target rotated by 30 degrees (the same labels, moved), with a small two-layer network. The methods are
the modules the trainer uses, driven by a minimal loop (2-D points instead of images)."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.datasets import make_moons
from torch import nn

from diffadapt.adapt.alignment.cdan import CDAN
from diffadapt.adapt.alignment.dann import DANN
from diffadapt.adapt.methods import Batch, SupervisedOnly, TrainingProgress
from diffadapt.adapt.optim import reversal_coefficient
from diffadapt.adapt.self_training.fixmatch import FixMatch

STEPS = 1000


class Extractor(nn.Sequential):
    features = 32


class ToyModel(nn.Module):
    """Points (B, 2) -> 32 features -> 10 logits (two used), the shape the methods expect of a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.extractor = Extractor(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
        self.classifier = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.extractor(x))


def moons(count: int, seed: int, degrees: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    points, labels = make_moons(count, noise=0.1, random_state=seed)
    angle = math.radians(degrees)
    rotation = torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=torch.float32)
    centred = torch.tensor(points, dtype=torch.float32) - torch.tensor([0.5, 0.25])
    return centred @ rotation.T, torch.tensor(labels)


def train(method_name: str, seed: int = 0) -> float:
    torch.manual_seed(seed)
    xs, ys = moons(600, seed)
    xt, _ = moons(600, seed + 100, degrees=30)  # the target's labels are never used in training
    xv, yv = moons(600, seed + 200, degrees=30)
    model = ToyModel()
    method = {"source": lambda: SupervisedOnly(), "dann": lambda: DANN(32), "cdan": lambda: CDAN(32, hidden=64),
              "fixmatch": lambda: FixMatch(model, threshold=0.9, teacher_decay=0.0, align=False)}[method_name]()
    optimizer = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.05, momentum=0.9)
    model.train()
    method.train()
    generator = torch.Generator().manual_seed(seed)
    for step in range(STEPS):
        p = step / STEPS
        index_s = torch.randint(0, len(xs), (64,), generator=generator)
        index_t = torch.randint(0, len(xt), (64,), generator=generator)
        target = xt[index_t]
        strong = target + 0.15 * torch.randn(target.shape, generator=generator)
        schedule = TrainingProgress(torch.tensor(p), torch.tensor(reversal_coefficient(p)))
        loss, _ = method(model, Batch(xs[index_s], ys[index_s], target, strong), schedule)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.after_step(model)
    model.eval()
    with torch.no_grad():
        return float((model(xv).argmax(1) == yv).float().mean())


@pytest.fixture(scope="module")
def source_only() -> float:
    return train("source")


@pytest.mark.parametrize("method", ["dann", "cdan", "fixmatch"])
def test_method_beats_source_only_on_rotated_moons(method, source_only):
    accuracy = train(method)
    assert source_only < 0.9, "the shift should hurt a source-only classifier"
    assert accuracy > source_only + 0.05, (method, accuracy, source_only)
