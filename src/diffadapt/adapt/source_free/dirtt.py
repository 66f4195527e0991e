"""Decision-boundary iterative refinement, DIRT-T (Shu, Bui, Narui & Ermon, ICLR 2018): after training, move
the classifier's boundaries away from dense regions of target images, on the target alone, in small
proximal steps so that it does not drift from what it learnt:

    L_t(theta) = mean_i H(p_theta(x_i)) + L_v(x_i)                  confident and locally constant (modules/vat.py)
    L(theta)   = L_t(theta) + beta mean_i KL(p_theta_(n-1)(x_i) || p_theta(x_i))
                                                                    the proximal term: stay near the teacher

theta_(n-1), the teacher, is a frozen copy of the model, replaced by the current model at the start of every
pass over the folder (:meth:`DIRTT.refresh`; the paper replaces it every fixed number of steps). The teacher
predicts with dropout off and on the batch's own statistics, as the student does. No label is read and no
source is needed: this is the source-free refinement ``adapt predict --adapt --adapt-method dirtt`` runs
(adapt/transductive.py), starting from whatever method trained the run.

Reproduce (numbers in benchmarks/RESULTS.md):
    python benchmarks/bench_adapt_folder.py --run default-usps --folder usps-val=USPS16_TRAIN_NPZ:val --variants plain,dirtt
"""

from __future__ import annotations

import copy

import torch

from diffadapt.adapt.methods import AdaptationMethod, Batch, TrainingProgress, prediction_entropy
from diffadapt.adapt.modules.networks import DigitClassifier
from diffadapt.adapt.modules.vat import kl_divergence, perturbation_passes, virtual_adversarial_loss
from diffadapt.adapt.stats import DomainStats


class DIRTT(AdaptationMethod):
    """The objective above; holds the teacher theta_(n-1)."""

    needs_source = False
    needs_target = True
    metric_names = ("loss", "entropy", "vat", "teacher_kl")

    def __init__(self, model: DigitClassifier, *, proximal_weight: float, radius: float) -> None:
        super().__init__()
        self.proximal_weight, self.radius = proximal_weight, radius
        self.teacher = copy.deepcopy(model).requires_grad_(False)

    @torch.no_grad()
    def refresh(self, model: DigitClassifier, images: torch.Tensor, stats: DomainStats, step: int, steps_per_pass: int) -> None:
        """theta_(n-1) <- theta at the start of each pass (``step`` a multiple of ``steps_per_pass``)."""
        if step % max(1, steps_per_pass) == 0:
            self.teacher.load_state_dict(model.state_dict())

    def forward(self, model: DigitClassifier, batch: Batch, training: TrainingProgress) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = model(batch.x_target)
        with torch.no_grad(), perturbation_passes(self.teacher):
            teacher_logits = self.teacher(batch.x_target)
        entropy = prediction_entropy(logits)
        vat = virtual_adversarial_loss(model, batch.x_target, self.radius)
        teacher_kl = kl_divergence(teacher_logits, logits)
        loss = entropy + vat + self.proximal_weight * teacher_kl
        return loss, {"loss": loss.detach(), "entropy": entropy.detach(), "vat": vat.detach(), "teacher_kl": teacher_kl.detach()}
