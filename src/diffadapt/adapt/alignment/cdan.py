"""Conditional domain-adversarial training with entropy conditioning, CDAN+E (Long et al., NeurIPS 2018).

    h_i = f_i (x) g_i                 the multilinear map: outer product of features f = F(x) and
                                      predictions g = softmax(C(f)) (g detached, as in the authors' code)
    w_i = 1 + exp(-H(g_i))            entropy conditioning: confident examples count more; normalised to
                                      sum to 1 within each domain
    L = CE(C(F(x_s)), y_s) + sum_i w_i CE(D(GRL_lambda(h_i)), d_i) / sum_i w_i  [+ w_H H(C(F(x_t)))]

Conditioning the discriminator on the class predictions aligns the class-conditional feature distributions
rather than the marginals, so a class of one domain is not matched to another class of the other.

Reproduce (numbers in benchmarks/RESULTS.md):
    python benchmarks/bench_adapt_pairs.py --out runs/adapt_pairs --epochs 3 --methods cdan --targets usps
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffadapt.adapt.config import AdaptConfig
from diffadapt.adapt.methods import AdaptationMethod, Batch, TrainingProgress, accuracy, prediction_entropy
from diffadapt.adapt.modules.grl import reverse_gradient
from diffadapt.adapt.modules.networks import DigitClassifier, domain_classifier
from diffadapt.data.types import NUM_CLASSES
from diffadapt.settings import field_default


def multilinear_map(features: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """(B, D) features and (B, K) class probabilities -> (B, K * D) flattened outer products f (x) g."""
    return torch.bmm(predictions.unsqueeze(2), features.unsqueeze(1)).flatten(1)


def entropy_weights(predictions: torch.Tensor, source_count: int) -> torch.Tensor:
    """w = 1 + exp(-H(g)) per example, normalised to sum to 1 within the source part and within the target
    part (so each domain carries half of the total weight 2)."""
    entropy = -(predictions * torch.log(predictions.clamp_min(1e-12))).sum(1)
    weights = 1.0 + torch.exp(-entropy)
    source, target = weights[:source_count], weights[source_count:]
    return torch.cat([source / source.sum(), target / target.sum()])


def conditional_adversarial_loss(domain_logits: torch.Tensor, weights: torch.Tensor, source_count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """sum_i w_i CE(D_i, d_i) / sum_i w_i with d = 0 for the first ``source_count`` rows, 1 after; and the
    discriminator's (unweighted) accuracy."""
    labels = torch.ones(domain_logits.shape[0], dtype=torch.int64, device=domain_logits.device)
    labels[:source_count] = 0
    losses = F.cross_entropy(domain_logits, labels, reduction="none")
    return (weights * losses).sum() / weights.sum(), accuracy(domain_logits, labels)


class CDAN(AdaptationMethod):
    """The discriminator D on f (x) g (K * D -> 256 -> 2, behind the GRL) and the CDAN+E objective above."""

    needs_target = True
    metric_names = ("loss", "source_accuracy", "domain_accuracy", "reversal")

    def __init__(self, features: int, *, entropy_weight: float = field_default(AdaptConfig, "entropy_weight"),
                 dropout: float = field_default(AdaptConfig, "domain_dropout"), hidden: int = 256) -> None:
        super().__init__()
        self.discriminator = domain_classifier(features * NUM_CLASSES, hidden=hidden, dropout=dropout)
        self.entropy_weight = entropy_weight

    def forward(self, model: DigitClassifier, batch: Batch, training: TrainingProgress) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        count = batch.x_source.shape[0]
        features = model.extractor(torch.cat([batch.x_source, batch.x_target]))
        logits = model.classifier(features)
        class_loss = F.cross_entropy(logits[:count], batch.y_source)
        predictions = F.softmax(logits, dim=1).detach()
        h = multilinear_map(features, predictions)
        domain_loss, domain_accuracy = conditional_adversarial_loss(
            self.discriminator(reverse_gradient(h, training.reversal)), entropy_weights(predictions, count), count)
        loss = class_loss + domain_loss
        if self.entropy_weight > 0:
            loss = loss + self.entropy_weight * prediction_entropy(logits[count:])
        return loss, {"loss": loss.detach(), "source_accuracy": accuracy(logits[:count], batch.y_source),
                      "domain_accuracy": domain_accuracy, "reversal": training.reversal.detach()}
