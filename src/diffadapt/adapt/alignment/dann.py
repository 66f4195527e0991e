"""Domain-adversarial training, DANN (Ganin et al., JMLR 2016).

    L = CE(C(F(x_s)), y_s) + CE(D(GRL_lambda(F([x_s; x_t]))), [0...0; 1...1])  [+ w_H H(C(F(x_t)))]

The gradient reversal layer makes F maximise the domain discriminator D's loss while D minimises it, so F
learns features that predict the label but not the domain. lambda_p follows the paper's schedule
(optim.reversal_coefficient) and arrives with every step. The optional last term (the ``matched``
recipe's) minimises the entropy of target predictions, pushing decision boundaries away from target images.

Reproduce (numbers in benchmarks/RESULTS.md):
    python benchmarks/bench_adapt_pairs.py --out runs/adapt_pairs --epochs 3 --methods source,dann,target
    diffadapt adapt train --source mnistm28.npz --target usps16_train.npz --method dann --recipe report --out RUN
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffadapt.adapt.config import AdaptConfig
from diffadapt.adapt.methods import AdaptationMethod, Batch, TrainingProgress, accuracy, prediction_entropy
from diffadapt.adapt.modules.grl import reverse_gradient
from diffadapt.adapt.modules.networks import DigitClassifier, domain_classifier
from diffadapt.settings import field_default


def domain_adversarial_loss(domain_logits: torch.Tensor, source_count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """CE of the domain classifier on [source; target] logits (labels 0 then 1); returns (loss, accuracy)."""
    labels = torch.ones(domain_logits.shape[0], dtype=torch.int64, device=domain_logits.device)
    labels[:source_count] = 0
    loss = F.cross_entropy(domain_logits, labels)
    return loss, accuracy(domain_logits, labels)


class DANN(AdaptationMethod):
    """The discriminator D (features -> 256 -> 2, behind the GRL) and the objective above."""

    needs_target = True
    metric_names = ("loss", "source_accuracy", "domain_accuracy", "reversal")

    def __init__(self, features: int, *, entropy_weight: float = field_default(AdaptConfig, "entropy_weight"),
                 dropout: float = field_default(AdaptConfig, "domain_dropout")) -> None:
        super().__init__()
        self.discriminator = domain_classifier(features, dropout=dropout)
        self.entropy_weight = entropy_weight

    def forward(self, model: DigitClassifier, batch: Batch, training: TrainingProgress) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        count = batch.x_source.shape[0]
        features = model.extractor(torch.cat([batch.x_source, batch.x_target]))
        logits = model.classifier(features[:count])
        class_loss = F.cross_entropy(logits, batch.y_source)
        domain_loss, domain_accuracy = domain_adversarial_loss(self.discriminator(reverse_gradient(features, training.reversal)), count)
        loss = class_loss + domain_loss
        if self.entropy_weight > 0:
            loss = loss + self.entropy_weight * prediction_entropy(model.classifier(features[count:]))
        return loss, {"loss": loss.detach(), "source_accuracy": accuracy(logits, batch.y_source),
                      "domain_accuracy": domain_accuracy, "reversal": training.reversal.detach()}
