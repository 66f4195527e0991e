"""The adaptation training loop: one loop for every method, from a fresh initialisation each run.

The pieces, each replaceable on its own:
- :class:`BatchPlan`: which images each step sees (one shuffled order per epoch for each domain);
- the method (``registry.make_method``): the objective of one batch, with its own parameters;
- :func:`training_step`: normalise, augment, the method's loss, backward, the SGD update;
- :func:`evaluate`, :func:`kept_model` and :class:`EpochSelector`: accuracies, which network (the model or its
  mean teacher) and which epoch's weights are kept;
- the caller saves the result (``apps/adaptation/runs.py``).

Target labels: in every method but the ``target`` baseline the target's training split reaches the loop with
its labels replaced by -1 (:func:`unlabelled`), so no code path can read them. They are read after training,
on the held-out target val split, for reporting; during training only when ``eval_every`` asks for a
report, and for choosing weights only under the explicit oracle ``selection="target-val-oracle"``.

On CUDA the whole step (normalisation, augmentation, forward, backward, update) is captured once as a CUDA
graph and replayed: each step is then one launch instead of hundreds, which a network this small needs.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from diffadapt.adapt import augment
from diffadapt.adapt.config import AdaptConfig
from diffadapt.adapt.methods import AdaptationMethod, Batch, TrainingProgress
from diffadapt.adapt.modules.networks import DigitClassifier
from diffadapt.adapt.optim import TensorSGD, annealed_lr, reversal_coefficient
from diffadapt.adapt.registry import make_method
from diffadapt.adapt.stats import EVAL_BATCH, DomainStats, normalise
from diffadapt.data.batches import index_stream
from diffadapt.data.memory import TensorImages
from diffadapt.errors import InputError
from diffadapt.progress import progress_bar


def unlabelled(data: TensorImages) -> TensorImages:
    """The same images with every label replaced by -1: what a method is given of the target."""
    return TensorImages(data.images, torch.full_like(data.labels, -1), data.domain)


@torch.no_grad()
def predict_logits(model: DigitClassifier, images: torch.Tensor, stats: DomainStats) -> torch.Tensor:
    """uint8 (N, C, H, W) images -> (N, 10) float logits; the model is left in eval mode."""
    model.eval()
    return torch.cat([model(normalise(images[i : i + EVAL_BATCH], stats)).float() for i in range(0, len(images), EVAL_BATCH)])


def predict(model: DigitClassifier, images: torch.Tensor, stats: DomainStats) -> torch.Tensor:
    """uint8 (N, C, H, W) images -> (N,) predicted labels; the model is left in eval mode."""
    return predict_logits(model, images, stats).argmax(1)


def evaluate(model: DigitClassifier, data: TensorImages, stats: DomainStats) -> tuple[float, torch.Tensor]:
    """(accuracy, predictions) of the model on labelled images; the model is left in eval mode."""
    predicted = predict(model, data.images, stats)
    return float((predicted == data.labels.to(predicted.device)).float().mean()), predicted


class BatchPlan:
    """Per epoch, one shuffled order of the labelled images and one of the target images (cycled when the
    target is smaller), both drawn from a CPU generator seeded with ``seed + 1``."""

    def __init__(self, labelled: int, target: int, batch_size: int, seed: int, device: torch.device) -> None:
        self.labelled, self.target, self.batch_size, self.device = labelled, target, batch_size, device
        self.steps_per_epoch = labelled // batch_size
        self.generator = torch.Generator(device="cpu").manual_seed(seed + 1)
        self.epoch, self.orders = -1, None

    def indices(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(labelled indices, target indices) of ``step``, each (batch_size,); steps come in order."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self.epoch:
            needed = self.steps_per_epoch * self.batch_size
            labelled = index_stream(self.labelled, needed, self.generator)
            target = index_stream(self.target, needed, self.generator)
            self.epoch, self.orders = epoch, torch.stack([labelled, target]).to(self.device)
        window = slice(position * self.batch_size, (position + 1) * self.batch_size)
        return self.orders[0, window], self.orders[1, window]  # type: ignore[index]


def kept_model(config: AdaptConfig, model: DigitClassifier, method: AdaptationMethod) -> DigitClassifier:
    """The network whose weights the run keeps: the trained model, or with ``final_weights="teacher"`` the
    method's running average of it (AdaptConfig.validate makes sure there is one)."""
    averaged = method.averaged_model()
    return averaged if config.final_weights == "teacher" and averaged is not None else model


class EpochSelector:
    """Which epoch's weights are kept: the last (``last``), the best on source val (``source-val``, label
    free), or the best on target val (``target-val-oracle``: reads target labels, for comparison only)."""

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.best_score, self.best_state, self.chosen_epoch = -1.0, None, None

    def observe(self, epoch: int, record: dict[str, Any], model: DigitClassifier) -> None:
        key = {"source-val": "source_val_accuracy", "target-val-oracle": "target_val_accuracy"}.get(self.rule)
        if key is None or key not in record:
            return
        if record[key] > self.best_score:
            self.best_score, self.chosen_epoch = record[key], epoch
            self.best_state = copy.deepcopy(model.state_dict())

    def apply(self, model: DigitClassifier) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


@dataclass
class AdaptResult:
    model: DigitClassifier
    source_stats: DomainStats
    target_stats: DomainStats
    target_val_accuracy: float
    source_val_accuracy: float
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0
    steps: int = 0
    cuda_graph: bool = False
    chosen_epoch: int | None = None
    last_step_target_val: dict[str, float] = field(default_factory=dict)  # {"student": a, "teacher": b} when the method has a teacher


def training_step(
    config: AdaptConfig, model: DigitClassifier, method: AdaptationMethod, optimizer: TensorSGD, training: TrainingProgress,
    x: torch.Tensor, y: torch.Tensor, xt: torch.Tensor, labelled_stats: DomainStats, target_stats: DomainStats,
) -> dict[str, torch.Tensor]:
    """One step on uint8 batches x (labelled; unread by a source-free method) and xt (target): normalise,
    augment as the recipe says, the method's loss, backward, SGD. Every op is a fixed-shape device op
    (capturable as a CUDA graph)."""
    labelled = None
    if method.needs_source:
        labelled = normalise(x, labelled_stats)
        if config.augment:
            labelled = augment.weak(labelled)
    target, target_strong = None, None
    if method.needs_target:
        target = normalise(xt, target_stats)
        if method.needs_strong_view:
            target_strong = augment.strong(target)
        if config.augment:
            target = augment.weak(target)
    loss, metrics = method(model, Batch(labelled, y, target, target_strong), training)
    loss.backward()
    optimizer.step()
    method.after_step(model)
    return metrics


def train_adaptation(
    config: AdaptConfig,
    source_train: TensorImages,
    source_val: TensorImages,
    target_train: TensorImages,
    target_val: TensorImages,
    device: torch.device,
    progress: bool = True,
    description: str | None = None,
) -> AdaptResult:
    """Train one classifier with ``config.method`` and report accuracies on both val splits.

    All four sets must already have ``config.channels`` channels and ``config.size`` pixels. ``description``
    names the run on the progress bar (default: the method and recipe).
    """
    if config.method != "target":
        target_train = unlabelled(target_train)
    if config.target_pool == "all":  # transductive: val's images join the unlabelled pool, its labels stay out
        target_train = TensorImages(torch.cat([target_train.images, target_val.images.to(target_train.device)]),
                                    torch.full((len(target_train) + len(target_val),), -1, dtype=torch.int64), target_train.domain)
    torch.manual_seed(config.seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(config.seed)
        torch.backends.cudnn.benchmark = not config.deterministic
        torch.backends.cudnn.deterministic = config.deterministic
    # On the device before any capture: a host-to-device copy cannot be recorded in a CUDA graph.
    source_stats, target_stats = DomainStats.of(source_train).to(device), DomainStats.of(target_train).to(device)
    model = DigitClassifier(config.network, config.channels, config.instance_norm).to(device)
    method = make_method(config, model).to(device)
    optimizer = TensorSGD([*model.parameters(), *method.parameters()], config.momentum, config.weight_decay, device)

    labelled_train, labelled_stats = (target_train, target_stats) if config.method == "target" else (source_train, source_stats)
    plan = BatchPlan(len(labelled_train), len(target_train), config.batch_size, config.seed, device)
    if plan.steps_per_epoch == 0:
        raise InputError(f"{len(labelled_train)} training images are fewer than one batch of {config.batch_size}")
    total_steps = config.epochs * plan.steps_per_epoch
    batch = config.batch_size
    images_l, labels_l = labelled_train.images.to(device), labelled_train.labels.to(device)
    images_t = target_train.images.to(device)
    static_x = torch.zeros((batch, *images_l.shape[1:]), dtype=torch.uint8, device=device)
    static_y = torch.zeros(batch, dtype=torch.int64, device=device)
    static_xt = torch.zeros((batch, *images_t.shape[1:]), dtype=torch.uint8, device=device)
    training = TrainingProgress(torch.zeros((), device=device), torch.zeros((), device=device))

    def step_fn() -> dict[str, torch.Tensor]:
        return training_step(config, model, method, optimizer, training, static_x, static_y, static_xt, labelled_stats, target_stats)

    runner = GraphRunner(step_fn, optimizer, enabled=config.cuda_graphs and device.type == "cuda")
    kept = kept_model(config, model, method)
    selection = EpochSelector(config.selection)
    history: list[dict[str, float]] = []
    sums = torch.zeros(len(method.metric_names), device=device)
    count = 0
    bar = progress_bar(total_steps, description or f"{config.method} ({config.recipe})", "step", enabled=progress, leave=True)
    model.train()
    method.train()
    start_time = time.perf_counter()
    for step in range(total_steps):
        p = step / total_steps
        lr = annealed_lr(config.lr, p, config.lr_alpha, config.lr_beta)
        optimizer.lr.fill_(lr)
        training.fraction.fill_(p)
        training.reversal.fill_(reversal_coefficient(p, config.reversal_gamma, config.reversal_max))
        index_l, index_t = plan.indices(step)
        static_x.copy_(images_l[index_l])
        static_y.copy_(labels_l[index_l])
        if method.needs_target:
            static_xt.copy_(images_t[index_t])
        metrics = runner.run(step)
        sums += torch.stack([metrics[name].float() for name in method.metric_names])
        count += 1
        bar.update(1)
        if (step + 1) % plan.steps_per_epoch == 0 or step + 1 == total_steps:
            epoch = (step + 1) // plan.steps_per_epoch
            record: dict[str, Any] = {"epoch": epoch, "step": step + 1, "lr": lr, **dict(zip(method.metric_names, (sums / count).tolist()))}
            sums.zero_()
            count = 0
            if config.selection == "source-val":
                record["source_val_accuracy"], _ = evaluate(kept, source_val.to(device), source_stats)
            if config.eval_every > 0 and epoch % config.eval_every == 0:
                record["target_val_accuracy"], _ = evaluate(kept, target_val.to(device), target_stats)
            selection.observe(epoch, record, kept)
            model.train()
            method.train()
            history.append(record)
            bar.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k not in ("epoch", "step", "lr")})
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - start_time
    bar.close()
    last_step: dict[str, float] = {}
    teacher = method.averaged_model()
    if teacher is not None:  # both at the last step, for reporting only: which one is kept was fixed in the config
        for name, network in (("student", model), ("teacher", teacher)):
            last_step[name], _ = evaluate(network, target_val.to(device), target_stats)
    if kept is not model:
        model.load_state_dict(kept.state_dict())
    selection.apply(model)
    target_accuracy, _ = evaluate(model, target_val.to(device), target_stats)
    source_accuracy, _ = evaluate(model, source_val.to(device), source_stats)
    return AdaptResult(model, source_stats, target_stats, target_accuracy, source_accuracy, history, train_seconds, total_steps,
                       runner.graph is not None, selection.chosen_epoch, last_step)


class GraphRunner:
    """Runs the step eagerly, or (CUDA) captures it as a graph after a few warm-up steps and replays it.
    Capture is an optimisation: when it fails, training goes on eagerly."""

    WARMUP_STEPS = 3

    def __init__(self, step_fn: Callable[[], dict[str, torch.Tensor]], optimizer: TensorSGD, enabled: bool) -> None:
        self.step_fn, self.optimizer, self.enabled = step_fn, optimizer, enabled
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: dict[str, torch.Tensor] | None = None

    def run(self, step: int) -> dict[str, torch.Tensor]:
        if self.graph is not None:
            self.graph.replay()
            return self.outputs  # type: ignore[return-value]
        if self.enabled and step >= self.WARMUP_STEPS:
            try:
                self.optimizer.zero_grad()
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    self.outputs = self.step_fn()
                graph.replay()
                self.graph = graph
                return self.outputs
            except RuntimeError as exc:
                warnings.warn(f"CUDA graph capture failed, training without it: {exc}", stacklevel=2)
                self.enabled = False
        self.optimizer.zero_grad()
        if not self.enabled:
            return self.step_fn()
        side = torch.cuda.Stream()  # warm-up on a side stream, as graph capture requires
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            outputs = self.step_fn()
        torch.cuda.current_stream().wait_stream(side)
        return outputs


def result_summary(result: AdaptResult) -> dict[str, Any]:
    """The results section of a run's config.json; an accuracy that was not measured (NaN) is null."""
    return {
        "target_val_accuracy": None if math.isnan(result.target_val_accuracy) else result.target_val_accuracy,
        "source_val_accuracy": None if math.isnan(result.source_val_accuracy) else result.source_val_accuracy,
        "train_seconds": result.train_seconds,
        "steps": result.steps,
        "cuda_graph": result.cuda_graph,
        "chosen_epoch": result.chosen_epoch,
        **({"last_step_target_val_accuracy": result.last_step_target_val} if result.last_step_target_val else {}),
        "history": result.history,
    }
