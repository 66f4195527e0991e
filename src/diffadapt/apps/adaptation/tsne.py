"""t-SNE of the extractor's features on both domains' validation images, coloured by class and by domain."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from diffadapt.adapt.stats import EVAL_BATCH, DomainStats, normalise  # noqa: E402
from diffadapt.apps.adaptation.runs import WEIGHTS_FILE, DomainSource, LoadedRun, load_domain  # noqa: E402
from diffadapt.data.memory import TensorImages  # noqa: E402
from diffadapt.errors import InputError  # noqa: E402
from diffadapt.io import atomic_path, check_output_files  # noqa: E402

TSNE_CLASS_FILE, TSNE_DOMAIN_FILE = "tsne_class.png", "tsne_domain.png"
MARKER_SIZE = 9  # points^2: visible on a 700-pixel figure of 4,000 points
MAX_TSNE_PER_DOMAIN = 100_000  # val images per domain a t-SNE may take (0: all of them)


@torch.no_grad()
def extract(run: LoadedRun, data: TensorImages, stats: DomainStats) -> np.ndarray:
    run.model.eval()
    parts = [run.model.extractor(normalise(data.images[i : i + EVAL_BATCH], stats)) for i in range(0, len(data), EVAL_BATCH)]
    return torch.cat(parts).double().numpy()


def embed(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2) with openTSNE's FFT-accelerated t-SNE (perplexity 30)."""
    # Imported here: openTSNE pulls in scikit-learn and SciPy (seconds), which nothing else on this path needs.
    from openTSNE import TSNE

    perplexity = min(30.0, max(1.0, (len(features) - 1) / 3))
    return np.asarray(TSNE(n_components=2, perplexity=perplexity, random_state=seed, n_jobs=-1, verbose=False).fit(features))


def subsample(data: TensorImages, limit: int, seed: int) -> TensorImages:
    if limit <= 0 or len(data) <= limit:
        return data
    index = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(len(data), limit, replace=False)))
    return TensorImages(data.images[index], data.labels[index], data.domain)


def scatter(points: np.ndarray, colours: np.ndarray, names: list[str], title: str, out: Path) -> Path:
    """(N, 2) points coloured by ``colours`` (indices into ``names``), written as PNG."""
    palette = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(6.4, 6.0), dpi=110)
    for index, name in enumerate(names):
        mask = colours == index
        ax.scatter(points[mask, 0], points[mask, 1], s=MARKER_SIZE, color=palette(index % 10), label=name, alpha=0.6, linewidths=0)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=2, fontsize=8, loc="best", frameon=True)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out


def tsne_figures(run: LoadedRun, out_dir: Path, per_domain: int = 2000, seed: int = 0,
                 domains: tuple[DomainSource, DomainSource] | None = None) -> tuple[Path, Path]:
    """Two figures for one run: features of source val and target val images by class and by domain.

    ``domains``: the run's (source, target) again, for a run trained on images in memory (default: read from
    the specs the run saved)."""
    config, document = run.config, run.document
    if domains is None and "adapted_from" in document:
        raise InputError("this run was adapted to a folder (adapt predict --adapt --save-adapted), whose images are not kept "
                         "with it; a t-SNE needs a run of adapt train", run.path)
    check_output_files(out_dir / TSNE_CLASS_FILE, out_dir / TSNE_DOMAIN_FILE)
    source_spec, target_spec = domains or (document["source"]["spec"], document["target"]["spec"])
    source = load_domain(source_spec, config.channels, config.size, config.source_box)
    target = load_domain(target_spec, config.channels, config.size, config.target_box)
    source_val, target_val = subsample(source.val, per_domain, seed), subsample(target.val, per_domain, seed + 1)
    features = np.concatenate([extract(run, source_val, run.source_stats), extract(run, target_val, run.target_stats)])
    if not np.isfinite(features).all():
        # Weights within bounds can still overflow float32 layer after layer; openTSNE would fail with a traceback.
        raise InputError("the model's features are not finite on the validation images (its weights overflow)", run.path / WEIGHTS_FILE)
    points = embed(features, seed)
    classes = np.concatenate([source_val.labels.numpy(), target_val.labels.numpy()])
    domains = np.concatenate([np.zeros(len(source_val), int), np.ones(len(target_val), int)])
    label = f"{source.domain} -> {target.domain}, {config.method} ({config.recipe})"
    by_class = scatter(points, classes, [str(d) for d in range(10)], f"t-SNE by class: {label}", out_dir / TSNE_CLASS_FILE)
    by_domain = scatter(points, domains, [f"source: {source.domain}", f"target: {target.domain}"], f"t-SNE by domain: {label}", out_dir / TSNE_DOMAIN_FILE)
    return by_class, by_domain
