"""Source hypothesis transfer: SHOT (Liang, Hu & Feng, ICML 2020), source-free adaptation of a trained
classifier to unlabelled target images.

The hypothesis h (the label classifier's last linear layer) is frozen; the rest g (extractor and the head's
hidden layers, batch norm included) is trained on target images x alone:

    p_i      = softmax(h(g(x_i)))                         predictions (B, K)
    L_ent    = mean_i H(p_i)                              each prediction confident
    L_div    = sum_k pbar_k log pbar_k,  pbar = mean_i p_i   the batch's predictions diverse (= -H(pbar))
    c_k      = sum_i p_ik g^(x_i) / sum_i p_ik            class centroids in feature space, then once more
               with the hard labels they give              (g^ = [g, 1] / ||[g, 1]||, cosine geometry)
    y^_i     = argmax_k cos(g^(x_i), c_k)                 clustering pseudo-labels
    L        = L_ent + L_div + beta CE(p_i, y^_i)          beta = 0.3, as in the paper's digit experiments

The centroids are recomputed from every target image at the start of each pass over the folder
(:meth:`SHOT.refresh`); within a pass a batch's pseudo-labels are the nearest centroids of its own current
features (detached), which needs no per-image index. No label is read: the target images arrive unlabelled.

Used by ``adapt predict --adapt`` (adapt/transductive.py). Reproduce (numbers in benchmarks/RESULTS.md):
    python benchmarks/bench_adapt_folder.py --run default-usps --folder usps-val=USPS16_TRAIN_NPZ:val --variants plain,shot
    python benchmarks/bench_adapt_folder.py --run default-svhn --folder svhn-like=svhn:val --variants plain,shot,fixmatch
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from diffadapt.adapt.methods import AdaptationMethod, Batch, TrainingProgress, prediction_entropy
from diffadapt.adapt.modules.networks import DigitClassifier
from diffadapt.adapt.stats import EVAL_BATCH, DomainStats, normalise
from diffadapt.data.types import NUM_CLASSES


def diversity_loss(logits: torch.Tensor) -> torch.Tensor:
    """L_div = sum_k pbar_k log pbar_k of (B, K) logits -> 0-d (minimised: the mean prediction spread out)."""
    mean = F.softmax(logits, dim=1).mean(0)
    return (mean * torch.log(mean.clamp_min(1e-12))).sum()


def unit_features(features: torch.Tensor) -> torch.Tensor:
    """g^ = [g, 1] / ||[g, 1]||: (N, D) -> (N, D + 1)."""
    return F.normalize(torch.cat([features, torch.ones_like(features[:, :1])], dim=1), dim=1)


def cluster_centroids(features: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """SHOT's centroids: soft-weighted by (N, K) probabilities, then once more with the hard labels those give.

    features: (N, D) raw features g(x) -> (K, D + 1) unit-feature centroids."""
    unit = unit_features(features.double())
    centroids = probabilities.double().t() @ unit / probabilities.double().sum(0).clamp_min(1e-12)[:, None]
    hard = F.one_hot(nearest_centroid(unit, centroids), probabilities.shape[1]).double()
    return (hard.t() @ unit / hard.sum(0).clamp_min(1e-12)[:, None]).float()


def nearest_centroid(unit: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(N, D + 1) unit features and (K, D + 1) centroids -> (N,) the index of the closest centroid (cosine)."""
    return (unit @ F.normalize(centroids.to(unit.dtype), dim=1).t()).argmax(1)


def hidden_features(model: DigitClassifier, x: torch.Tensor) -> torch.Tensor:
    """g(x): the input of the last linear layer, (B, 256) for the report's head (``model.classifier`` is a
    Sequential whose last module is h)."""
    return model.classifier[:-1](model.extractor(x))


@torch.no_grad()
def hidden_features_of(model: DigitClassifier, images: torch.Tensor, stats: DomainStats) -> torch.Tensor:
    """uint8 (N, C, H, W) images -> (N, 256) g(x) in eval mode, in batches; the model is left in eval mode."""
    model.eval()
    return torch.cat([hidden_features(model, normalise(images[i : i + EVAL_BATCH], stats)) for i in range(0, len(images), EVAL_BATCH)])


class SHOT(AdaptationMethod):
    """The objective above. Freezes ``model.classifier[-1]`` (h) on construction; holds the centroids."""

    needs_source = False
    needs_target = True
    metric_names = ("loss", "entropy", "diversity", "pseudo_label_loss")

    def __init__(self, model: DigitClassifier, pseudo_label_weight: float = 0.3) -> None:
        super().__init__()
        self.pseudo_label_weight = pseudo_label_weight
        model.classifier[-1].requires_grad_(False)
        self.register_buffer("centroids", torch.zeros(NUM_CLASSES, model.classifier[-1].in_features + 1))

    @torch.no_grad()
    def refresh(self, model: DigitClassifier, images: torch.Tensor, stats: DomainStats, step: int, steps_per_pass: int) -> None:
        """At the start of each pass (``step`` a multiple of ``steps_per_pass``), the centroids of all
        ``images`` (uint8 (N, C, H, W)) under the current model, in eval mode; the model is left training."""
        if step % max(1, steps_per_pass):
            return
        features = hidden_features_of(model, images, stats)
        probabilities = F.softmax(model.classifier[-1](features), dim=1)
        self.centroids.copy_(cluster_centroids(features, probabilities))
        model.train()

    def forward(self, model: DigitClassifier, batch: Batch, training: TrainingProgress) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        features = hidden_features(model, batch.x_target)
        logits = model.classifier[-1](features)
        with torch.no_grad():
            pseudo_labels = nearest_centroid(unit_features(features.detach().float()), self.centroids)
        entropy, diversity = prediction_entropy(logits), diversity_loss(logits)
        pseudo_label_loss = F.cross_entropy(logits, pseudo_labels)
        loss = entropy + diversity + self.pseudo_label_weight * pseudo_label_loss
        return loss, {"loss": loss.detach(), "entropy": entropy.detach(), "diversity": diversity.detach(),
                      "pseudo_label_loss": pseudo_label_loss.detach()}
