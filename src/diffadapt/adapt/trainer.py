"""One trainer, three modes: ``source`` (source labels only), ``dann`` (source labels + unlabelled target
images), ``target`` (target labels: the upper bound). Each mode starts from its own fresh initialisation.

In ``dann`` mode the target split reaches the trainer with its labels removed (see ``unlabelled``), so no
code path can read them; target labels are used after training, on the held-out target val split, for
reporting only (and for choosing an epoch only when the user asks for ``select_on_val``).

On CUDA the whole step (normalisation, augmentation, forward, backward, SGD update) is captured once as a
CUDA graph and replayed: each step is then one launch instead of about a hundred, which is what a network
this small needs to keep the GPU busy.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from diffadapt.adapt.alignment.dann import annealed_lr, domain_adversarial_loss, entropy, reversal_coefficient
from diffadapt.adapt.config import AdaptConfig
from diffadapt.adapt.modules.networks import DigitClassifier
from diffadapt.data.memory import LUMA, TensorImages


@dataclass
class DomainStats:
    """Per-channel mean and std of a domain's training images in [0, 1]."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def of(cls, data: TensorImages) -> DomainStats:
        mean, std = data.mean_std()
        return cls(mean, std.clamp_min(1e-3))

    def to(self, device: torch.device) -> DomainStats:
        return DomainStats(self.mean.to(device), self.std.to(device))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> DomainStats:
        return cls(torch.tensor(data["mean"]), torch.tensor(data["std"]))


def normalise(images: torch.Tensor, stats: DomainStats) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float (x / 255 - mean) / std per channel."""
    mean = stats.mean.to(images.device).view(1, -1, 1, 1)
    std = stats.std.to(images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean) / std


def augment(x: torch.Tensor, max_shift: float = 2.0, grayscale_p: float = 0.25) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (bilinear, border padding) and random grayscale.

    Every random draw is a device op of fixed shape and no host value is copied to the device, so the
    function can live inside a CUDA graph.
    """
    b, c, h, w = x.shape
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, 0, 2] = (torch.rand(b, device=x.device, dtype=x.dtype) * 2 - 1) * (2 * max_shift / w)
    theta[:, 1, 2] = (torch.rand(b, device=x.device, dtype=x.dtype) * 2 - 1) * (2 * max_shift / h)
    grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if c == 3 and grayscale_p > 0:
        luma = x[:, 0:1] * LUMA[0] + x[:, 1:2] * LUMA[1] + x[:, 2:3] * LUMA[2]
        gray = (torch.rand(b, 1, 1, 1, device=x.device) < grayscale_p).to(x.dtype)
        x = gray * luma.expand_as(x) + (1 - gray) * x
    return x


class TensorSGD:
    """SGD with momentum whose learning rate is a device tensor, so a captured step reads the current value.

    Same update as torch.optim.SGD (dampening 0): buf = momentum * buf + (grad + wd * p); p -= lr * buf.
    """

    def __init__(self, params: list[nn.Parameter], momentum: float, weight_decay: float, device: torch.device) -> None:
        self.params = params
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.buffers = [torch.zeros_like(p) for p in params]
        self.lr = torch.zeros((), device=device)

    @torch.no_grad()
    def step(self) -> None:
        params = [p for p in self.params if p.grad is not None]
        buffers = [b for p, b in zip(self.params, self.buffers) if p.grad is not None]
        grads = [p.grad for p in params]
        if self.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        torch._foreach_mul_(buffers, self.momentum)
        torch._foreach_add_(buffers, grads)
        torch._foreach_add_(params, torch._foreach_mul(buffers, -self.lr))

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


def unlabelled(data: TensorImages) -> TensorImages:
    """The same images with every label replaced by -1: what ``dann`` mode is given of the target."""
    return TensorImages(data.images, torch.full_like(data.labels, -1), data.domain)


@torch.no_grad()
def evaluate(model: DigitClassifier, data: TensorImages, stats: DomainStats, batch_size: int = 2048) -> tuple[float, torch.Tensor]:
    """(accuracy, predictions) of the model on labelled images; the model is left in eval mode."""
    model.eval()
    predictions = []
    for start in range(0, len(data), batch_size):
        x = normalise(data.images[start : start + batch_size], stats)
        predictions.append(model(x).argmax(1))
    predicted = torch.cat(predictions)
    return float((predicted == data.labels).float().mean()), predicted


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


def train_adaptation(
    config: AdaptConfig,
    source_train: TensorImages,
    source_val: TensorImages,
    target_train: TensorImages,
    target_val: TensorImages,
    device: torch.device,
    progress: bool = True,
) -> AdaptResult:
    """Train one classifier in ``config.mode`` and report accuracies on both val splits.

    All four sets must already have ``config.channels`` channels and ``config.size`` pixels.
    """
    from tqdm import tqdm

    mode = config.mode
    if mode != "target":
        # dann reads the target's images only; source needs nothing of it. Neither gets its labels.
        target_train = unlabelled(target_train)
    torch.manual_seed(config.seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(config.seed)
        torch.backends.cudnn.benchmark = not config.deterministic
        torch.backends.cudnn.deterministic = config.deterministic
    # On the device before any capture: a host-to-device copy cannot be recorded in a CUDA graph.
    source_stats, target_stats = DomainStats.of(source_train).to(device), DomainStats.of(target_train).to(device)
    model = DigitClassifier(config.network, config.channels, with_domain_head=mode == "dann", domain_dropout=config.domain_dropout).to(device)
    optimizer = TensorSGD(list(model.parameters()), config.momentum, config.weight_decay, device)

    labelled_train = target_train if mode == "target" else source_train
    labelled_stats = target_stats if mode == "target" else source_stats
    steps_per_epoch = len(labelled_train) // config.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{len(labelled_train)} training images are fewer than one batch of {config.batch_size}")
    total_steps = config.epochs * steps_per_epoch
    batch = config.batch_size
    images_l, labels_l = labelled_train.images.to(device), labelled_train.labels.to(device)
    images_t = target_train.images.to(device)

    static_x = torch.zeros((batch, *images_l.shape[1:]), dtype=torch.uint8, device=device)
    static_y = torch.zeros(batch, dtype=torch.int64, device=device)
    static_xt = torch.zeros((batch, *images_t.shape[1:]), dtype=torch.uint8, device=device)

    def step_fn() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = normalise(static_x, labelled_stats)
        if config.augment:
            x = augment(x)
        if mode == "dann":
            xt = normalise(static_xt, target_stats)
            if config.augment:
                xt = augment(xt)
            features = model.extractor(torch.cat([x, xt]))
            logits = model.classifier(features[:batch])
            class_loss = F.cross_entropy(logits, static_y)
            domain_loss, domain_acc = domain_adversarial_loss(model.domain(model.reversal(features)), batch)
            loss = class_loss + domain_loss
            if config.entropy_weight > 0:
                loss = loss + config.entropy_weight * entropy(model.classifier(features[batch:]))
        else:
            logits = model(x)
            loss = F.cross_entropy(logits, static_y)
            domain_acc = torch.zeros((), device=device)
        loss.backward()
        optimizer.step()
        accuracy = (logits.argmax(1) == static_y).float().mean()
        return loss.detach(), accuracy.detach(), domain_acc.detach()

    graph = None
    graph_outputs = None
    use_graph = config.cuda_graphs and device.type == "cuda"
    warmup_steps = 3 if use_graph else 0

    source_order_gen = torch.Generator(device="cpu").manual_seed(config.seed + 1)
    epoch_orders: dict[int, torch.Tensor] = {}

    def indices_for(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, position = divmod(step, steps_per_epoch)
        if epoch not in epoch_orders:
            epoch_orders.clear()
            order = torch.randperm(len(images_l), generator=source_order_gen)
            needed = steps_per_epoch * batch
            target_order = torch.cat([torch.randperm(len(images_t), generator=source_order_gen) for _ in range(needed // len(images_t) + 1)])
            epoch_orders[epoch] = torch.stack([order[:needed], target_order[:needed]]).to(device)
        orders = epoch_orders[epoch]
        window = slice(position * batch, (position + 1) * batch)
        return orders[0, window], orders[1, window]

    history: list[dict[str, float]] = []
    sums = torch.zeros(3, device=device)
    count = 0
    best_state, best_accuracy, chosen_epoch = None, -1.0, None
    bar = tqdm(total=total_steps, desc=f"{mode} ({config.recipe})", unit="step", disable=not progress, dynamic_ncols=True)
    model.train()
    start_time = time.perf_counter()
    for step in range(total_steps):
        progress_p = step / total_steps
        optimizer.lr.fill_(annealed_lr(config.lr, progress_p, config.lr_alpha, config.lr_beta))
        if mode == "dann":
            model.reversal.set_coefficient(reversal_coefficient(progress_p, config.reversal_gamma, config.reversal_max))
        index_l, index_t = indices_for(step)
        static_x.copy_(images_l[index_l])
        static_y.copy_(labels_l[index_l])
        if mode == "dann":
            static_xt.copy_(images_t[index_t])
        if graph is not None:
            graph.replay()
            outputs = graph_outputs
        elif use_graph and step >= warmup_steps:
            try:
                optimizer.zero_grad()
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    graph_outputs = step_fn()
                graph.replay()
                outputs = graph_outputs
            except RuntimeError as exc:  # capture is an optimisation: fall back to plain steps
                warnings.warn(f"CUDA graph capture failed, training without it: {exc}", stacklevel=2)
                graph, use_graph = None, False
                optimizer.zero_grad()
                outputs = step_fn()
        else:
            if use_graph:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    optimizer.zero_grad()
                    outputs = step_fn()
                torch.cuda.current_stream().wait_stream(side)
            else:
                optimizer.zero_grad()
                outputs = step_fn()
        sums += torch.stack(outputs)
        count += 1
        bar.update(1)
        epoch_end = (step + 1) % steps_per_epoch == 0
        if epoch_end or step + 1 == total_steps:
            epoch = (step + 1) // steps_per_epoch
            loss, source_acc, domain_acc = (sums / count).tolist()
            record = {"epoch": epoch, "loss": loss, "train_accuracy": source_acc}
            if mode == "dann":
                record["domain_accuracy"] = domain_acc
            sums.zero_()
            count = 0
            wants_eval = config.eval_every > 0 and (epoch % config.eval_every == 0)
            if wants_eval:
                record["target_val_accuracy"], _ = evaluate(model, target_val.to(device), target_stats)
                model.train()
                if config.select_on_val and record["target_val_accuracy"] > best_accuracy:
                    best_accuracy, chosen_epoch = record["target_val_accuracy"], epoch
                    best_state = copy.deepcopy(model.state_dict())
            history.append(record)
            postfix = {"loss": f"{loss:.3f}", "acc": f"{source_acc:.3f}"}
            if mode == "dann":
                postfix["dom_acc"] = f"{domain_acc:.3f}"
            if "target_val_accuracy" in record:
                postfix["tgt_val"] = f"{record['target_val_accuracy']:.3f}"
            bar.set_postfix(postfix)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_seconds = time.perf_counter() - start_time
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    target_accuracy, _ = evaluate(model, target_val.to(device), target_stats)
    source_accuracy, _ = evaluate(model, source_val.to(device), source_stats)
    return AdaptResult(model, source_stats, target_stats, target_accuracy, source_accuracy, history, train_seconds, total_steps, graph is not None, chosen_epoch)


def result_summary(result: AdaptResult) -> dict[str, Any]:
    return {
        "target_val_accuracy": result.target_val_accuracy,
        "source_val_accuracy": result.source_val_accuracy,
        "train_seconds": result.train_seconds,
        "steps": result.steps,
        "cuda_graph": result.cuda_graph,
        "chosen_epoch": result.chosen_epoch,
        "history": result.history,
    }
