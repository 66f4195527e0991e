"""The in-memory dataset: conversions, statistics and batching by index."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from diffadapt.data import DigitSet, TensorImages
from diffadapt.data.memory import convert_images


def test_gray_rgb_conversions_match_pil(rng):
    rgb = rng.integers(0, 256, size=(4, 3, 8, 8), dtype=np.uint8)
    gray = convert_images(torch.from_numpy(rgb), channels=1)
    expected = np.stack([np.asarray(Image.fromarray(im.transpose(1, 2, 0)).convert("L")) for im in rgb])
    assert np.abs(gray[:, 0].numpy().astype(int) - expected.astype(int)).max() <= 1
    back = convert_images(gray, channels=3)
    assert back.shape == (4, 3, 8, 8) and torch.equal(back[:, 0], back[:, 2])


def test_resize_16_to_28():
    images = torch.full((2, 1, 16, 16), 200, dtype=torch.uint8)
    resized = convert_images(images, size=28)
    assert resized.shape == (2, 1, 28, 28) and (resized == 200).all()


def test_conversion_chunks_by_bytes_not_by_count(rng, monkeypatch):
    """Large sides shrink the chunk (a fixed 8,192 images of 1024x1024 asked for 100 GB); results stay the same."""
    from diffadapt.data import memory

    images = torch.from_numpy(rng.integers(0, 256, size=(7, 3, 12, 12), dtype=np.uint8))
    whole = convert_images(images, channels=1, size=20)
    seen = []
    original = memory.F.interpolate
    monkeypatch.setattr(memory, "CHUNK_BYTES", 4 * 3 * 20 * 20 * 2)  # room for two images per chunk
    monkeypatch.setattr(memory.F, "interpolate", lambda part, **kw: seen.append(len(part)) or original(part, **kw))
    assert torch.equal(convert_images(images, channels=1, size=20), whole) and max(seen) == 2 and sum(seen) == 7


def test_prepare_refuses_a_size_that_cannot_fit_in_memory(run_cli, tmp_path):
    code, _, err = run_cli("data", "prepare", "mnistm", "--size", "1024", "--out", tmp_path / "big")
    assert code == 2 and "GiB in memory" in err and "--size" in err and not (tmp_path / "big").exists()


def test_mean_std_matches_numpy(rng):
    images = rng.integers(0, 256, size=(50, 6, 6, 3), dtype=np.uint8)
    data = TensorImages.from_digitset(DigitSet(images, np.zeros(50), "x"))
    mean, std = data.mean_std()
    scaled = images / 255.0
    np.testing.assert_allclose(mean.numpy(), scaled.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(std.numpy(), scaled.std(axis=(0, 1, 2)), rtol=1e-4)
