"""The one batch order of every training loop: shuffled passes over a data set, drawn from a generator.

Drawing orders on the CPU from a seeded generator makes them identical on every device and every rank,
so a seed fixes the order and ``--resume`` can recompute it.
"""

from __future__ import annotations

import torch


def index_stream(num_items: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """(count,) int64 indices: shuffled passes over 0 .. num_items - 1, concatenated and cut to ``count``.

    With ``count <= num_items`` this is one permutation's first ``count`` entries (every item at most once);
    a small domain paired with a large one is cycled through several passes.
    """
    if num_items < 1:
        raise ValueError("no items to draw batches from")
    passes = -(-count // num_items)
    return torch.cat([torch.randperm(num_items, generator=generator) for _ in range(max(1, passes))])[:count]


def epoch_batches(num_items: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """(batches, batch_size) indices of one epoch; the incomplete last batch is dropped."""
    batches = num_items // batch_size
    return index_stream(num_items, batches * batch_size, generator).view(batches, batch_size)
