"""Virtual adversarial domain adaptation, VADA (Shu, Bui, Narui & Ermon, ICLR 2018).

DANN's domain-adversarial features plus the cluster assumption on the target: decision boundaries should not
cross dense regions of target images, so target predictions are made confident (conditional entropy) and
locally constant (virtual adversarial training, modules/vat.py):

    L = CE(C(F(x_s)), y_s)                                      the labelled source
      + CE(D(GRL_lambda_d(F([x_s; x_t]))), [0...0; 1...1])      domain-adversarial features: D minimises it,
                                                                F gets -lambda_d times its gradient
      + lambda_s L_v(x_s)                                       locally constant on the source
      + lambda_t (H(C(F(x_t))) + L_v(x_t))                      confident and locally constant on the target

lambda_d is constant (the GRL's coefficient is ``domain_weight``, not DANN's schedule); the weights are
``AdaptConfig.domain_weight``, ``source_vat_weight``, ``target_weight`` and the VAT radius ``vat_radius``.
The paper pairs it with instance-normalised input (``--instance-norm``) for MNIST -> SVHN.

Reproduce (numbers in benchmarks/RESULTS.md):
    diffadapt adapt train --source mnistm --target usps --method vada --recipe matched --epochs 6 --batch-size 64 --out RUN
    python benchmarks/bench_adapt_pairs.py --out runs/adapt_pairs --epochs 3 --methods vada --targets usps
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffadapt.adapt.alignment.dann import domain_adversarial_loss
from diffadapt.adapt.methods import AdaptationMethod, Batch, TrainingProgress, accuracy, prediction_entropy
from diffadapt.adapt.modules.grl import reverse_gradient
from diffadapt.adapt.modules.networks import DigitClassifier, domain_classifier
from diffadapt.adapt.modules.vat import virtual_adversarial_loss


class VADA(AdaptationMethod):
    """The discriminator D (features -> 256 -> 2, behind the GRL) and the objective above."""

    needs_target = True
    metric_names = ("loss", "source_accuracy", "domain_accuracy", "target_entropy", "target_vat")

    def __init__(self, features: int, *, domain_weight: float, source_vat_weight: float, target_weight: float, radius: float) -> None:
        # No defaults here: AdaptConfig is their one source.
        super().__init__()
        self.discriminator = domain_classifier(features)
        self.source_vat_weight, self.target_weight, self.radius = source_vat_weight, target_weight, radius
        self.register_buffer("domain_weight", torch.tensor(float(domain_weight)))

    def forward(self, model: DigitClassifier, batch: Batch, training: TrainingProgress) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        count = batch.x_source.shape[0]
        features = model.extractor(torch.cat([batch.x_source, batch.x_target]))
        logits = model.classifier(features)
        class_loss = F.cross_entropy(logits[:count], batch.y_source)
        domain_loss, domain_accuracy = domain_adversarial_loss(self.discriminator(reverse_gradient(features, self.domain_weight)), count)
        target_entropy = prediction_entropy(logits[count:])
        target_vat = virtual_adversarial_loss(model, batch.x_target, self.radius)
        loss = class_loss + domain_loss + self.target_weight * (target_entropy + target_vat)
        if self.source_vat_weight > 0:
            loss = loss + self.source_vat_weight * virtual_adversarial_loss(model, batch.x_source, self.radius)
        return loss, {"loss": loss.detach(), "source_accuracy": accuracy(logits[:count], batch.y_source),
                      "domain_accuracy": domain_accuracy, "target_entropy": target_entropy.detach(), "target_vat": target_vat.detach()}
