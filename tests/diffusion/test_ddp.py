"""Two processes on the CPU (gloo) train a few steps: identical weights on both ranks, and the same weights as one
process training the global batch alone (2 ranks x 8 images = 1 process x 16)."""

from __future__ import annotations

import socket

import torch
import torch.multiprocessing as mp

from diffadapt.diffusion.unet import ConditionalUNet
from tests.diffusion.ddp_worker import run_rank
from tests.diffusion.helpers import embedded_classes, tiny_config, train_tiny


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_ranks_hold_identical_weights(tmp_path):
    mp.spawn(run_rank, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    torch.manual_seed(0)  # the seed train_tiny uses: the weights the ranks started from
    initial = ConditionalUNet(tiny_config()).state_dict()
    assert any(not torch.equal(initial[k], rank0[k]) for k in initial), "training changed nothing"
    # fp32 on both sides: under bf16 autocast (auto on CPUs with native bf16) two half-batch gradients and one
    # full-batch gradient round differently, far beyond the order of the sums.
    alone = train_tiny(tmp_path / "alone", embedded_classes("mnistm", (0, 1)), steps=6, batch_size=16, precision="fp32").model.state_dict()
    for key in rank0:  # equal up to the order of floating-point sums (DDP averages two half-batch gradients)
        torch.testing.assert_close(rank0[key], alone[key], rtol=1e-4, atol=1e-5)
    # Rank 0 alone wrote the checkpoint, and it records the world size.
    import json

    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["world_size"] == 2 and config["step"] == 6
