"""The course's grading classifier for generated digits (``Classifier.pth``), loaded strictly.

LeNet: conv1 3->6 5x5, max-pool 2, conv2 6->16 5x5, max-pool 2, fc1 256->128, fc2 128->64, fc3 64->10,
ReLU between. Input: 28x28 RGB scaled to [0, 1], then normalised with mean 0.5 and std 0.5 per channel,
which is exactly the [-1, 1] model scale.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from diffadapt.io import file_budget, load_state_dict_file, load_state_dict_strict


class CourseLeNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(256, 128)
        self.fc2 = nn.Linear(128, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, 28, 28) in [-1, 1] -> (B, 10) logits."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def load_course_classifier(path: str | Path) -> CourseLeNet:
    """Load ``{'state_dict': ...}`` (or a bare state dict) with weights_only=True: no code can run."""

    model = CourseLeNet()
    load_state_dict_strict(model, load_state_dict_file(path, "classifier file", file_budget(model)), Path(path))
    return model.eval()
