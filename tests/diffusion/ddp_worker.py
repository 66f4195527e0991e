"""A process of the two-rank DistributedDataParallel test (spawned, so it lives in an importable module)."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def run_rank(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from tests.diffusion.helpers import embedded_classes, train_tiny

    data = embedded_classes("mnistm", (0, 1))
    result = train_tiny(Path(out) / "run", data, steps=6, batch_size=16, precision="fp32")
    weights = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
    torch.save(weights, Path(out) / f"rank{rank}.pt")
