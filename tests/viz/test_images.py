from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from diffadapt.images import minmax_to_uint8, model_to_uint8, uint8_to_model
from diffadapt.io import atomic_path
from diffadapt.viz.grid import image_grid, save_grid


def test_uint8_model_roundtrip():
    images = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    model = uint8_to_model(images)
    assert model.min() == -1 and model.max() == 1
    assert torch.equal(model_to_uint8(model), images)


def test_minmax_per_image():
    x = torch.stack([torch.linspace(-3, 5, 48).view(3, 4, 4), torch.linspace(0, 1e-3, 48).view(3, 4, 4)])
    out = minmax_to_uint8(x)
    assert out.dtype == torch.uint8
    for image in out:
        assert image.min() == 0 and image.max() == 255


def test_grid_with_labels_shape():
    images = np.zeros((6, 10, 10, 3), np.uint8)
    plain = image_grid(images, 3, pad=1)
    assert plain.shape == (1 + 2 * 11, 1 + 3 * 11, 3)
    labelled = image_grid(images, 3, row_labels=["a", "bb"], col_labels=["1", "2", "3"])
    assert labelled.shape[0] > plain.shape[0] and labelled.shape[1] > plain.shape[1]
    with pytest.raises(ValueError):
        image_grid(images, 4)


def test_save_grid_png(tmp_path):
    path = save_grid(tmp_path / "g.png", np.full((4, 8, 8, 1), 128, np.uint8), 2, scale=2)
    with Image.open(path) as image:
        assert image.mode == "RGB"


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and len(list(tmp_path.iterdir())) == 1
