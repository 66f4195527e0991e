"""Digit layouts of the domains and the box that brings two domains' digits to one height."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from diffadapt.data.layout import matching_boxes
from diffadapt.data.memory import convert_images


def test_matching_boxes():
    assert matching_boxes("mnistm", "usps", 28) == (0, 20)  # USPS fills its frame, MNIST uses 20 of 28
    assert matching_boxes("usps", "mnist", 28) == (20, 0)
    assert matching_boxes("mnistm", "mnist", 28) == (0, 0)
    assert matching_boxes("mnistm", "svhn", 28) == (0, 0)  # no fixed layout: left alone
    assert matching_boxes("mnistm", "usps", 32) == (0, 23)


def test_box_centres_the_image_on_its_background():
    images = torch.full((2, 1, 16, 16), 7, dtype=torch.uint8)
    images[0, :, 4:12, 6:10] = 250  # a bright stroke on a background of 7
    images[1] = 0
    out = convert_images(images, channels=3, size=28, box=20)
    assert out.shape == (2, 3, 28, 28) and out.dtype == torch.uint8
    frame = torch.ones(28, 28, dtype=torch.bool)
    frame[4:24, 4:24] = False
    assert bool((out[0][:, frame] == 7).all()) and bool((out[1] == 0).all())
    expected = F.interpolate(images[:1].float(), size=(20, 20), mode="bilinear", align_corners=False, antialias=True)
    assert torch.equal(out[0, 0, 4:24, 4:24], expected[0, 0].round().to(torch.uint8))
    assert torch.equal(out[0, 0], out[0, 2])  # gray -> RGB repeats the channel


@pytest.mark.parametrize("box", [28, 40, -1])
def test_box_must_fit_the_frame(box):
    with pytest.raises(ValueError, match="box"):
        convert_images(torch.zeros(1, 1, 16, 16, dtype=torch.uint8), size=28, box=box)
