"""Our own digit judge: a compact VGG-style CNN that classifies digits far better than the course's LeNet,
and whose 128-d penultimate features give the Fréchet distance between generated and real images.

The judge checkpoint carries the feature statistics of the real test images it was measured on, and the
real-vs-real floors, so ``digits evaluate`` needs no data set at hand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diffadapt.data import TensorImages, read_source
from diffadapt.errors import InputError
from diffadapt.evaluate.frechet import feature_statistics, frechet_between
from diffadapt.images import uint8_to_model
from diffadapt.io import (
    CONFIG_FILE,
    check_weight_magnitudes,
    load_state_dict_strict,
    load_weights,
    read_run_config,
    run_folder,
    save_weights,
    write_json_atomic,
)
from diffadapt.progress import progress_bar
from diffadapt.settings import SEED_BOUNDS, Settings, is_finite_number, number, short_repr

JUDGE_KIND = "diffadapt/digit-judge"
JUDGE_WEIGHTS = "model.safetensors"
FLOOR_SIZES = (100, 200, 500, 1000)  # sample sizes at which the real-vs-real floor is recorded
FEATURE_DIM = 128
# The judge's features are ReLU'd, batch-normalised activations averaged over the image: the shipped judge's
# real means stay below 1 (largest 0.55), its covariance entries below 0.21. A mean beyond MAX_FEATURE (over a
# million times that), or a covariance entry beyond its square, is a damaged or forged file, whose distances
# would be astronomic or overflow, never a judge's statistics.
MAX_FEATURE = 1e6
SYMMETRY_TOLERANCE = 1e-6  # |S - S^T| relative to the largest |S|: np.cov's matrices are symmetric to rounding
PSD_TOLERANCE = 1e-6  # the smallest eigenvalue may be this share of the largest below 0 (rounding), no further


def default_judge_checkpoint() -> Path:
    return Path(str(resources.files("diffadapt").joinpath("assets", "judge_mnistm")))


def conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class JudgeNet(nn.Module):
    """(B, 3, 28, 28) in [-1, 1] -> (B, 10) logits; ``features`` gives the (B, 128) penultimate layer."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_block(in_channels, 32), conv_block(32, 32), nn.MaxPool2d(2),
            conv_block(32, 64), conv_block(64, 64), nn.MaxPool2d(2),
            conv_block(64, FEATURE_DIM), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(FEATURE_DIM, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


@dataclass
class JudgeTrainConfig(Settings):
    epochs: int = number(6, at_least=1, at_most=1000, help="passes over the real training images")
    batch_size: int = number(256, at_least=2, at_most=1 << 16, help="images per step")
    lr: float = number(2e-3, above=0.0, at_most=1.0, help="AdamW one-cycle peak learning rate")
    weight_decay: float = number(5e-4, at_least=0.0, at_most=1.0, help="AdamW weight decay")
    seed: int = number(0, **SEED_BOUNDS, help="fixes weights, order and augmentation")
    augment: bool = True


def random_shift(x: torch.Tensor, generator: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Translate each image by up to ``pixels`` (edge-padded): cheap augmentation for digit classifiers."""
    b, _, h, w = x.shape
    padded = F.pad(x, (pixels,) * 4, mode="replicate")
    dy = torch.randint(0, 2 * pixels + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pixels + 1, (b,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)[None, :]).to(x.device)
    cols = (dx[:, None] + torch.arange(w)[None, :]).to(x.device)
    batch_index = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


@torch.no_grad()
def judge_features(model: JudgeNet, images: torch.Tensor, batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 3, 28, 28) images -> ((N, 128) features, (N,) predicted labels)."""
    model.eval()
    feats, preds = [], []
    device = next(model.parameters()).device
    for start in range(0, len(images), batch_size):
        x = uint8_to_model(images[start : start + batch_size].to(device))
        f = model.features(x)
        feats.append(f.cpu())
        preds.append(model.head(f).argmax(1).cpu())
    return torch.cat(feats).double().numpy(), torch.cat(preds).numpy()


def train_judge(train_images: torch.Tensor, train_labels: torch.Tensor, config: JudgeTrainConfig, device: torch.device, progress: bool = True) -> JudgeNet:
    """Train on uint8 (N, 3, 28, 28) images with AdamW and a one-cycle schedule."""

    torch.manual_seed(config.seed)
    model = JudgeNet().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = len(train_images) // config.batch_size
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=config.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(config.seed)
    images, labels = train_images.to(device), train_labels.to(device)
    bar = progress_bar(config.epochs * steps_per_epoch, "training judge", "step", enabled=progress, leave=True)
    for _ in range(config.epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator).to(device)
        for i in range(steps_per_epoch):
            index = order[i * config.batch_size : (i + 1) * config.batch_size]
            x = uint8_to_model(images[index])
            if config.augment:
                x = random_shift(x, generator)
            loss = F.cross_entropy(model(x), labels[index], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            bar.update(1)
            if i % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


def reference_statistics(model: JudgeNet, test_images: torch.Tensor, seed: int = 0) -> dict[str, Any]:
    """Real test-set feature statistics and the real-vs-real floors.

    - ``floor_halves``: FD between two random halves of the test set (the issue's floor);
    - ``floors_by_size``: FD between n random test images and the rest, for n in ``FLOOR_SIZES``: the floor
      at the sample size being judged (FD shrinks with sample size, so ``floor_1000`` is the fair yardstick
      for the 1,000 graded images).
    """

    features, _ = judge_features(model, test_images)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(features))
    half = len(features) // 2
    mu, sigma = feature_statistics(features)
    by_size = {str(n): frechet_between(features[order[:n]], features[order[n:]]) for n in FLOOR_SIZES if n < len(features) // 2}
    return {
        "mu": mu,
        "sigma": sigma,
        "num_real": len(features),
        "floor_halves": frechet_between(features[order[:half]], features[order[half:]]),
        "floor_1000": by_size.get("1000"),
        "floors_by_size": by_size,
    }


def save_judge(run_dir: Path, model: JudgeNet, stats: dict[str, Any], info: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors["real.mu"] = torch.from_numpy(stats["mu"])
    tensors["real.sigma"] = torch.from_numpy(stats["sigma"])
    save_weights(run_dir / JUDGE_WEIGHTS, tensors, {"kind": JUDGE_KIND})
    write_json_atomic(run_dir / CONFIG_FILE, {"kind": JUDGE_KIND, **info, **{k: v for k, v in stats.items() if k not in ("mu", "sigma")}})


@dataclass
class LoadedJudge:
    model: JudgeNet
    config: dict[str, Any]
    mu: np.ndarray
    sigma: np.ndarray
    path: Path | None = None  # the weights file: model and real statistics, named by the errors they cause


def load_judge(path: str | Path | None = None) -> LoadedJudge:
    """A judge run folder (default: the shipped MNIST-M judge), checked: kind, weights, real statistics."""
    run_dir = run_folder(Path(path) if path is not None else default_judge_checkpoint(), (CONFIG_FILE, JUDGE_WEIGHTS),
                         "a judge run folder (config.json + model.safetensors)")
    config = read_run_config(run_dir)
    source = run_dir / CONFIG_FILE
    if config.get("kind") != JUDGE_KIND:
        raise InputError(f"checkpoint's kind is {short_repr(config.get('kind'))}, expected {JUDGE_KIND!r}", source)
    floors = config.get("floors_by_size", {})
    numbers = [config.get("floor_halves"), *(floors.values() if isinstance(floors, dict) else [None])]
    if not all(is_finite_number(v) and v >= 0 for v in numbers):  # a Fréchet distance is never negative
        raise InputError("judge config needs a number floor_halves >= 0 and an object floors_by_size of numbers >= 0", source)
    model = JudgeNet()
    expected = {f"model.{k}": v for k, v in model.state_dict().items()}
    expected |= {"real.mu": torch.empty(FEATURE_DIM, device="meta"), "real.sigma": torch.empty(FEATURE_DIM, FEATURE_DIM, device="meta")}
    tensors, _ = load_weights(run_dir / JUDGE_WEIGHTS, expected)
    check_weight_magnitudes({k: v for k, v in tensors.items() if k.startswith("model.")}, run_dir / JUDGE_WEIGHTS)
    load_state_dict_strict(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, run_dir)
    mu, sigma = tensors.get("real.mu"), tensors.get("real.sigma")
    if mu is None or sigma is None or mu.shape != (FEATURE_DIM,) or sigma.shape != (FEATURE_DIM, FEATURE_DIM):
        raise InputError(f"judge weights need real.mu ({FEATURE_DIM},) and real.sigma ({FEATURE_DIM}, {FEATURE_DIM})", run_dir)
    weights = run_dir / JUDGE_WEIGHTS
    mu, sigma = mu.double().numpy(), sigma.double().numpy()
    check_real_statistics(mu, sigma, weights)
    return LoadedJudge(model.eval(), config, mu, sigma, weights)


def check_real_statistics(mu: np.ndarray, sigma: np.ndarray, source: Path) -> None:
    """``real.mu`` and ``real.sigma`` are a Gaussian's mean and covariance of judge features: finite, of a
    sane size, the covariance symmetric and positive semi-definite. Otherwise every Fréchet distance
    measured against them is inf, negative or meaningless, and would be reported as a score."""
    for key, value, bound in (("real.mu", mu, MAX_FEATURE), ("real.sigma", sigma, MAX_FEATURE**2)):
        if not np.isfinite(value).all():
            raise InputError(f"tensor {key!r} holds NaN or infinite values", source)
        largest = float(np.abs(value).max())
        if largest > bound:
            raise InputError(f"tensor {key!r} holds a value of magnitude {largest:.3g}, beyond the {bound:.0e} of any judge's feature statistics", source)
    scale = float(np.abs(sigma).max())
    asymmetry = float(np.abs(sigma - sigma.T).max())
    if asymmetry > SYMMETRY_TOLERANCE * scale:
        raise InputError(f"tensor 'real.sigma' is not symmetric (|S - S^T| up to {asymmetry:.3g}); it is no covariance", source)
    eigenvalues = np.linalg.eigvalsh(sigma)
    if eigenvalues[0] < -PSD_TOLERANCE * float(np.abs(eigenvalues).max()):
        raise InputError(f"tensor 'real.sigma' is not positive semi-definite (eigenvalue {eigenvalues[0]:.3g}); it is no covariance", source)


def train_judge_from_source(data: str | Path, out: Path, epochs: int, seed: int, device: torch.device) -> str:
    """Train the judge on a real source's train split, measure it on its test split (the real reference),
    save it to ``out``; returns a one-line summary."""
    splits = read_source(data)
    if "train" not in splits or "test" not in splits:
        raise InputError("the judge needs a source with train and test splits (its test split is the real reference)", data)
    config = JudgeTrainConfig(epochs=epochs, seed=seed)
    train = TensorImages.from_digitset(splits["train"], channels=3, size=28)
    test = TensorImages.from_digitset(splits["test"], channels=3, size=28)
    if len(test) < 2 * min(FLOOR_SIZES):
        raise InputError(f"the judge's test split needs at least {2 * min(FLOOR_SIZES)} images for its floors, found {len(test)}", data)
    if len(train) < config.batch_size:
        raise InputError(f"the judge's train split needs at least one batch of {config.batch_size} images, found {len(train)}", data)
    start = time.perf_counter()
    model = train_judge(train.images, train.labels, config, device).cpu()
    _, predictions = judge_features(model, test.images)
    accuracy = float((predictions == test.labels.numpy()).mean())
    stats = reference_statistics(model, test.images, seed=seed)
    info = {"data": str(data), "domain": splits["train"].domain, "num_train": len(train), "num_test": len(test), "test_accuracy": accuracy,
            "train_config": config.to_dict(), "train_seconds": time.perf_counter() - start, "device": device.type}
    save_judge(out, model, stats, info)
    floors = ", ".join(f"{n}-vs-rest {value:.3f}" for n, value in stats["floors_by_size"].items())
    return (f"judge test accuracy {accuracy * 100:.2f}% on {len(test)} real {splits['train'].domain} test images; "
            f"floors: halves {stats['floor_halves']:.3f}, {floors}; saved to {out}")
