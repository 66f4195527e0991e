"""The one batch order: shuffled passes over a data set, reproducible from a generator."""

from __future__ import annotations

import torch

from diffadapt.data.batches import epoch_batches, index_stream


def test_epoch_visits_every_kept_image_once():
    batches = epoch_batches(103, 16, torch.Generator().manual_seed(0))
    assert batches.shape == (6, 16)
    assert len(set(batches.flatten().tolist())) == 96 and int(batches.max()) < 103


def test_stream_cycles_a_small_set_in_whole_passes():
    stream = index_stream(5, 12, torch.Generator().manual_seed(1))
    assert stream.shape == (12,)
    assert sorted(stream[:5].tolist()) == sorted(stream[5:10].tolist()) == list(range(5))


def test_same_generator_same_order():
    a = index_stream(64, 40, torch.Generator().manual_seed(3))
    b = index_stream(64, 40, torch.Generator().manual_seed(3))
    c = index_stream(64, 40, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
