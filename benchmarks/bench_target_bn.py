"""Trained adaptation runs before and after re-estimating batch-norm statistics on the target (AdaBN).

    python benchmarks/bench_target_bn.py RUN_DIR [RUN_DIR ...]

AdaBN (Li et al., 2016): keep every weight, replace each batch-norm layer's running mean and variance by
those of the target's unlabelled training images (no augmentation, the target's input normalisation), then
predict as usual. Label-free: only the target's train images are read; its val labels only score the result.
For each seed folder under each RUN_DIR, one row: the target val accuracy with the trained statistics and
with the target's, and the source val accuracy of the trained model. Not a training option of
``adapt train``: the measurements in benchmarks/RESULTS.md say why.
"""

from __future__ import annotations

import argparse
import copy

import torch
from common import machine

from diffadapt.adapt.modules.networks import DigitClassifier
from diffadapt.adapt.stats import EVAL_BATCH, DomainStats, normalise
from diffadapt.adapt.trainer import evaluate
from diffadapt.apps.adaptation.runs import load_pair, load_run, run_folders


@torch.no_grad()
def with_target_bn(model: DigitClassifier, images: torch.Tensor, stats: DomainStats) -> DigitClassifier:
    """A copy of ``model`` whose batch-norm statistics are the cumulative mean and variance over ``images``
    (uint8 (N, C, H, W)); every other layer in eval mode, so dropout does not shift later statistics."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # None: a cumulative average over all batches, not an exponential one
            module.train()
    for start in range(0, len(images), EVAL_BATCH):
        model(normalise(images[start : start + EVAL_BATCH], stats))
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="adapt train output folders (or seed folders)")
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    print("| run | target val, trained BN | target val, target BN | change | source val, trained BN |")
    print("|---|---|---|---|---|")
    for path in args.runs:
        for folder in run_folders(path):
            run = load_run(folder)
            source, target, _ = load_pair(run.document["source"]["spec"], run.document["target"]["spec"], run.config)
            before, _ = evaluate(run.model, target.val, run.target_stats)
            after, _ = evaluate(with_target_bn(run.model, target.train.images, run.target_stats), target.val, run.target_stats)
            source_val, _ = evaluate(run.model, source.val, run.source_stats)
            print(f"| {folder} | {before:.4f} | {after:.4f} | {after - before:+.4f} | {source_val:.4f} |", flush=True)


if __name__ == "__main__":
    main()
