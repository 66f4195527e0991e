"""t-SNE of the extractor's features on both domains' validation images, coloured by class and by domain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from diffadapt.adapt.runs import LoadedRun, load_domain
from diffadapt.adapt.trainer import DomainStats, normalise
from diffadapt.data.memory import TensorImages


@torch.no_grad()
def extract(run: LoadedRun, data: TensorImages, stats: DomainStats) -> np.ndarray:
    run.model.eval()
    parts = [run.model.extractor(normalise(data.images[i : i + 2048], stats)) for i in range(0, len(data), 2048)]
    return torch.cat(parts).double().numpy()


def embed(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) with openTSNE's FFT-accelerated t-SNE (scikit-learn's Barnes-Hut if absent)."""
    try:
        from openTSNE import TSNE

        return np.asarray(TSNE(n_components=2, perplexity=30, random_state=seed, n_jobs=-1, verbose=False).fit(features))
    except ImportError:
        from sklearn.manifold import TSNE as SkTSNE

        return SkTSNE(n_components=2, perplexity=30, random_state=seed, init="pca").fit_transform(features)


def subsample(data: TensorImages, limit: int, seed: int) -> TensorImages:
    if limit <= 0 or len(data) <= limit:
        return data
    index = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(len(data), limit, replace=False)))
    return TensorImages(data.images[index], data.labels[index], data.domain)


def scatter(points: np.ndarray, colours: np.ndarray, names: list[str], title: str, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from diffadapt.viz.atomic import atomic_path

    palette = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(6.4, 6.0), dpi=110)
    for index, name in enumerate(names):
        mask = colours == index
        ax.scatter(points[mask, 0], points[mask, 1], s=3, color=palette(index % 10), label=name, alpha=0.7, linewidths=0)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=4, fontsize=8, loc="best", frameon=True)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out


def tsne_figures(run: LoadedRun, out_dir: Path, per_domain: int = 2000, seed: int = 0) -> tuple[Path, Path]:
    """Two figures for one run: features of source val and target val images by class and by domain."""
    config, document = run.config, run.document
    source = load_domain(document["source"]["spec"], config.channels, config.size, config.source_box)
    target = load_domain(document["target"]["spec"], config.channels, config.size, config.target_box)
    source_val, target_val = subsample(source.val, per_domain, seed), subsample(target.val, per_domain, seed + 1)
    features = np.concatenate([extract(run, source_val, run.source_stats), extract(run, target_val, run.target_stats)])
    points = embed(features, seed)
    classes = np.concatenate([source_val.labels.numpy(), target_val.labels.numpy()])
    domains = np.concatenate([np.zeros(len(source_val), int), np.ones(len(target_val), int)])
    label = f"{source.domain} -> {target.domain}, {config.mode} ({config.recipe})"
    by_class = scatter(points, classes, [str(d) for d in range(10)], f"t-SNE by class: {label}", out_dir / "tsne_class.png")
    by_domain = scatter(points, domains, [f"source: {source.domain}", f"target: {target.domain}"], f"t-SNE by domain: {label}", out_dir / "tsne_domain.png")
    return by_class, by_domain
