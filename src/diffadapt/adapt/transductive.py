"""Adapting a trained classifier to one folder of unlabelled images, transductively, before predicting it.

A user of ``adapt predict`` holds what training lacked: the target images themselves. This module continues
a trained run on them without labels:

- ``fixmatch``: the run's own FixMatch objective (self_training/fixmatch.py) continued from its weights,
  with a labelled source beside the folder (by default the embedded domain of the run's source, which ships
  with the package) so that the classes keep their meaning; the teacher starts as the trained model.
- ``shot``: source-free (source_free/shot.py): the label classifier's last layer frozen, the rest trained
  on the folder alone with information maximisation and clustering pseudo-labels.
- ``dirtt``: source-free (source_free/dirtt.py): DIRT-T's refinement, conditional entropy and virtual
  adversarial training on the folder with a proximal pull towards a teacher renewed every pass.

All run a fixed number of steps, so the time does not grow with the folder; the learning rate follows the
run's annealing from :attr:`FolderAdaptConfig.lr`. Nothing here reads a label of the folder: its images come
in as :class:`TensorImages` whose labels are replaced by -1 before the first step.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch

from diffadapt.adapt.config import AdaptConfig, FolderAdaptConfig
from diffadapt.adapt.methods import AdaptationMethod, TrainingProgress
from diffadapt.adapt.modules.networks import DigitClassifier
from diffadapt.adapt.optim import TensorSGD, annealed_lr
from diffadapt.adapt.registry import make_method
from diffadapt.adapt.source_free.dirtt import DIRTT
from diffadapt.adapt.source_free.shot import SHOT
from diffadapt.adapt.stats import DomainStats
from diffadapt.adapt.trainer import BatchPlan, training_step, unlabelled
from diffadapt.data.memory import TensorImages
from diffadapt.errors import InputError
from diffadapt.progress import progress_bar

MIN_FOLDER_IMAGES = 32  # fewer cannot fill a batch without repeating each image many times over
# Methods whose loss pushes the predicted class shares towards balance (SHOT's diversity term): after them the
# balanced-label estimate (adapt/estimate.py, COT) cannot see errors, so it is not reported.
BALANCING_METHODS = frozenset({"shot"})


def adapt_to_folder(
    model: DigitClassifier, run_config: AdaptConfig, folder: TensorImages, folder_stats: DomainStats,
    config: FolderAdaptConfig, device: torch.device, source: TensorImages | None = None,
    source_stats: DomainStats | None = None, progress: bool = True,
) -> DigitClassifier:
    """A copy of ``model`` adapted to ``folder`` (uint8 (N, C, H, W), prepared as the run prepares its target),
    in eval mode; ``model`` itself is left as it was.

    ``source``/``source_stats``: labelled images for ``fixmatch`` (prepared as the run's source), unused by
    the source-free ``shot`` and ``dirtt``. The result is the same for the same seed on one device.
    """
    if len(folder) < MIN_FOLDER_IMAGES:
        raise InputError(f"adapting needs at least {MIN_FOLDER_IMAGES} images, the folder has {len(folder)}")
    folder = unlabelled(folder).to(device)
    torch.manual_seed(config.seed)
    adapted = copy.deepcopy(model).to(device).train()
    method_config = replace(run_config, method="fixmatch")  # its augmentation switches; fixmatch's own settings
    method: AdaptationMethod
    if config.method == "shot":
        method = SHOT(adapted)
    elif config.method == "dirtt":
        method = DIRTT(adapted, proximal_weight=config.proximal_weight, radius=run_config.vat_radius)
    else:
        if source is None or source_stats is None:
            raise InputError("fixmatch adaptation needs a labelled source")
        if len(source) < config.batch_size:
            raise InputError(f"the source has {len(source)} images, fewer than one batch of {config.batch_size}")
        method = make_method(method_config, adapted)
    if method.needs_source:
        labelled, labelled_stats, batch_size = source.to(device), source_stats, config.batch_size  # type: ignore[union-attr]
    else:  # the plan still draws a labelled order; training_step never reads it
        labelled, labelled_stats, batch_size = folder, folder_stats, min(config.batch_size, len(folder))
    method = method.to(device).train()
    parameters = [p for p in [*adapted.parameters(), *method.parameters()] if p.requires_grad]
    optimizer = TensorSGD(parameters, run_config.momentum, run_config.weight_decay, device)
    plan = BatchPlan(len(labelled), len(folder), batch_size, config.seed, device)
    training = TrainingProgress(torch.zeros((), device=device), torch.zeros((), device=device))
    folder_stats, labelled_stats = folder_stats.to(device), labelled_stats.to(device)
    bar = progress_bar(config.steps, f"adapting to the folder ({config.method})", "step", enabled=progress)
    for step in range(config.steps):
        p = step / config.steps
        optimizer.lr.fill_(annealed_lr(config.lr, p, run_config.lr_alpha, run_config.lr_beta))
        training.fraction.fill_(p)
        index_l, index_t = plan.indices(step)
        method.refresh(adapted, folder.images, folder_stats, step, plan.steps_per_epoch)
        optimizer.zero_grad()
        training_step(method_config, adapted, method, optimizer, training, labelled.images[index_l], labelled.labels[index_l],
                      folder.images[index_t], labelled_stats, folder_stats)
        bar.update(1)
    bar.close()
    return adapted.eval()
