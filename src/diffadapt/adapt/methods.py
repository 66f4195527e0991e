"""What every adaptation method is: a small ``nn.Module`` that turns one batch into the training objective.

The trainer owns the loop, the data order, the optimiser and the schedules; a method owns its loss and its
own parameters (a domain discriminator, a teacher). Each step the trainer hands the method the model, the
batch and where training stands (:class:`TrainingProgress`), and takes back the loss to minimise and a few
0-d tensors to log. Adding a method means adding a module under ``alignment/`` or ``self_training/`` and a
line in :func:`make_method`; the loop, evaluation and checkpointing stay as they are.

Baselines: ``source`` trains on labelled source images only; ``target`` on labelled target images only (the
upper bound). Neither sees the other domain's images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from diffadapt.adapt.modules.networks import DigitClassifier
from diffadapt.adapt.stats import DomainStats


@dataclass
class Batch:
    """One step's images, normalised per domain (and augmented as the recipe says).

    Attributes:
        x_source: (B, C, H, W) labelled images (the target's in the ``target`` baseline), or None when the
            method needs none (a source-free one).
        y_source: (B,) int64 labels in 0..9 (unused when x_source is None).
        x_target: (B, C, H, W) unlabelled target images (weak view), or None when the method needs none.
        x_target_strong: (B, C, H, W) a strongly augmented view of the same target images, or None.
    """

    x_source: torch.Tensor | None
    y_source: torch.Tensor
    x_target: torch.Tensor | None = None
    x_target_strong: torch.Tensor | None = None


@dataclass
class TrainingProgress:
    """Where training stands at the current step, as 0-d device tensors (a captured CUDA graph reads them);
    the trainer fills them from the schedules in optim.py, passed explicitly.

    Attributes:
        fraction: p in [0, 1], the fraction of training done.
        reversal: lambda_p, the adversarial weight (see optim.reversal_coefficient).
    """

    fraction: torch.Tensor
    reversal: torch.Tensor


class AdaptationMethod(nn.Module):
    """Base class: ``forward(model, batch, training) -> (loss, metrics)``; metrics are 0-d tensors named in
    ``metric_names``, averaged per epoch by the trainer."""

    needs_source: bool = True  # the batch carries labelled images (False: source-free)
    needs_target: bool = False  # the batch carries unlabelled target images
    needs_strong_view: bool = False  # ... and a strongly augmented view of them
    metric_names: tuple[str, ...] = ("loss", "source_accuracy")

    def forward(self, model: DigitClassifier, batch: Batch, training: TrainingProgress) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def refresh(self, model: DigitClassifier, images: torch.Tensor, stats: DomainStats, step: int, steps_per_pass: int) -> None:
        """Called before every step of a folder adaptation (adapt/transductive.py) with all the folder's uint8
        (N, C, H, W) images: a method that keeps state of the whole folder (SHOT's centroids, DIRT-T's teacher)
        renews it here at the start of each pass."""

    @torch.no_grad()
    def after_step(self, model: DigitClassifier) -> None:
        """Called after every optimiser step (a teacher's EMA update lives here)."""

    def averaged_model(self) -> DigitClassifier | None:
        """The method's running average of the model (a mean teacher), or None when it keeps none."""
        return None


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(1) == labels).float().mean().detach()


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean entropy H(p) = -sum_k p_k log p_k of softmax predictions (B, K) -> 0-d."""
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.exp() * log_p).sum(1).mean()


class SupervisedOnly(AdaptationMethod):
    """The baselines: CE(C(F(x)), y) on the labelled domain alone."""

    def forward(self, model: DigitClassifier, batch: Batch, training: TrainingProgress) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = model(batch.x_source)
        loss = F.cross_entropy(logits, batch.y_source)
        return loss, {"loss": loss.detach(), "source_accuracy": accuracy(logits, batch.y_source)}
