"""Confident pseudo-labels with weak and strong views: FixMatch (Sohn et al., NeurIPS 2020) for domain
adaptation, with AdaMatch's distribution alignment (Berthelot et al., ICLR 2022) and an optional mean
teacher (Tarvainen & Valpola, 2017; French et al., ICLR 2018).

    q_i     = softmax(T(a_weak(x_t,i)))                        the teacher's prediction on a weak view
    q~_i    = normalise(q_i * pi_s / pi_t)                     distribution alignment: pi_s and pi_t are
                                                               running means of source and target predictions
    y^_i    = argmax q~_i,   m_i = [max q~_i >= tau]           pseudo-label and confidence mask
    L = CE(C(F(x_s)), y_s) + w_u * mean_i m_i CE(C(F(a_strong(x_t,i))), y^_i)

T is the model itself (FixMatch) when ``teacher_decay`` is 0, else an exponential moving average of it
(theta_T <- d theta_T + (1 - d) theta after every step), run on the target batch alone so its batch norm
sees target statistics. Pseudo-labels never see target labels: the target's labels are not in the batch.
With ``final_weights="teacher"`` the run keeps theta_T instead of theta at the end, as mean-teacher methods
report their teacher (French et al., 2018); the choice reads no labels.

Reproduce (numbers in benchmarks/RESULTS.md; the shipped models in MODEL_CARD.md):
    python benchmarks/bench_adapt_pairs.py --out runs/adapt_pairs --epochs 3 --methods fixmatch --targets usps
    python benchmarks/bench_adapt_pairs.py --out runs/adapt_long --epochs 8 --batch-size 64 --methods fixmatch \\
        --targets svhn,mnist --tag b64e8
    python benchmarks/bench_adapt_pairs.py --out runs/adapt_long --epochs 12 --batch-size 64 --methods fixmatch \\
        --targets mnist --tag b64e12-teacher --set final_weights=teacher
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.nn.modules.dropout import _DropoutNd

from diffadapt.adapt.config import AdaptConfig
from diffadapt.adapt.methods import AdaptationMethod, Batch, TrainingProgress, accuracy
from diffadapt.adapt.modules.networks import DigitClassifier
from diffadapt.data.types import NUM_CLASSES
from diffadapt.settings import field_default


def align_distribution(probabilities: torch.Tensor, source_mean: torch.Tensor, target_mean: torch.Tensor) -> torch.Tensor:
    """q * pi_s / pi_t, renormalised per row: (B, K) probabilities and two (K,) class frequencies."""
    aligned = probabilities * (source_mean / target_mean.clamp_min(1e-6))
    return aligned / aligned.sum(1, keepdim=True)


def pseudo_label_loss(strong_logits: torch.Tensor, probabilities: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """mean_i m_i CE(strong_logits_i, argmax q_i) with m_i = [max q_i >= threshold]; returns (loss, mask rate)."""
    confidence, labels = probabilities.max(1)
    mask = (confidence >= threshold).to(strong_logits.dtype)
    losses = F.cross_entropy(strong_logits, labels, reduction="none")
    return (losses * mask).mean(), mask.mean().detach()


class FixMatch(AdaptationMethod):
    """The objective above; holds the teacher (when used) and the running class frequencies pi_s, pi_t."""

    needs_target = True
    needs_strong_view = True
    metric_names = ("loss", "source_accuracy", "mask_rate", "pseudo_label_loss")

    # Defaults are AdaptConfig's (their one source); make_method passes the run's by name.
    def __init__(self, model: DigitClassifier, *, threshold: float = field_default(AdaptConfig, "confidence"),
                 weight: float = field_default(AdaptConfig, "unlabelled_weight"), teacher_decay: float = field_default(AdaptConfig, "teacher_decay"),
                 align: bool = field_default(AdaptConfig, "align_distribution"), momentum: float = 0.999) -> None:
        super().__init__()
        self.threshold = threshold
        self.weight = weight
        self.teacher_decay = teacher_decay
        self.align = align
        self.momentum = momentum
        self.teacher = copy.deepcopy(model).requires_grad_(False) if teacher_decay > 0 else None
        uniform = torch.full((NUM_CLASSES,), 1.0 / NUM_CLASSES)
        self.register_buffer("source_mean", uniform.clone())
        self.register_buffer("target_mean", uniform.clone())

    def forward(self, model: DigitClassifier, batch: Batch, training: TrainingProgress) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        count = batch.x_source.shape[0]
        if self.teacher is None:
            logits = model(torch.cat([batch.x_source, batch.x_target, batch.x_target_strong]))
            source_logits, weak_logits, strong_logits = logits[:count], logits[count : 2 * count].detach(), logits[2 * count :]
        else:
            logits = model(torch.cat([batch.x_source, batch.x_target_strong]))
            source_logits, strong_logits = logits[:count], logits[count:]
            with torch.no_grad():
                weak_logits = self.teacher(batch.x_target)
        class_loss = F.cross_entropy(source_logits, batch.y_source)
        with torch.no_grad():
            probabilities = F.softmax(weak_logits.float(), dim=1)
            if self.align:
                self.source_mean.lerp_(F.softmax(source_logits.detach().float(), dim=1).mean(0), 1 - self.momentum)
                self.target_mean.lerp_(probabilities.mean(0), 1 - self.momentum)
                probabilities = align_distribution(probabilities, self.source_mean, self.target_mean)
        unlabelled_loss, mask_rate = pseudo_label_loss(strong_logits, probabilities, self.threshold)
        loss = class_loss + self.weight * unlabelled_loss
        return loss, {"loss": loss.detach(), "source_accuracy": accuracy(source_logits, batch.y_source),
                      "mask_rate": mask_rate, "pseudo_label_loss": unlabelled_loss.detach()}

    def train(self, mode: bool = True) -> FixMatch:
        """The teacher keeps batch norm on batch statistics (the target's) but never drops units."""
        super().train(mode)
        if self.teacher is not None:
            for module in self.teacher.modules():
                if isinstance(module, _DropoutNd):
                    module.eval()
        return self

    def averaged_model(self) -> DigitClassifier | None:
        return self.teacher

    @torch.no_grad()
    def after_step(self, model: DigitClassifier) -> None:
        if self.teacher is None:
            return
        teacher_params, student_params = list(self.teacher.parameters()), [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(teacher_params, student_params, 1.0 - self.teacher_decay)
        for mine, theirs in zip(self.teacher.buffers(), model.buffers()):
            mine.copy_(theirs)
