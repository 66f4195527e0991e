"""The UNet: shapes for every supported size and channel count, patch folding, config checks."""

from __future__ import annotations

import pytest
import torch

from diffadapt.diffusion.models import default_digits_checkpoint, load_model
from diffadapt.diffusion.unet import ConditionalUNet, UNetConfig
from tests.diffusion.helpers import tiny_config


@pytest.mark.parametrize("size, channels, patch", [(28, 3, 1), (28, 1, 2), (32, 3, 2), (32, 1, 4)])
def test_output_has_the_input_shape(size, channels, patch):
    model = ConditionalUNet(tiny_config(channels, size, patch_size=patch))
    x = torch.randn(2, channels, size, size)
    eps = model(x, torch.tensor([0, 99]), torch.tensor([3, 10]))
    assert eps.shape == x.shape


def test_patches_fold_into_channels_and_back_exactly():
    """With p = 2 the first convolution sees each 2x2 patch as 4 channels per input channel, and the
    output unfolds back to the same pixels: a network whose inner part is the identity returns its input."""
    model = ConditionalUNet(tiny_config(3, 28, patch_size=2))
    assert model.conv_in.in_channels == 12 and model.conv_out.out_channels == 12
    x = torch.randn(2, 3, 28, 28)
    folded = model.patchify(x)
    assert folded.shape == (2, 12, 14, 14)
    assert torch.equal(model.unpatchify(folded), x)
    # Pixel (0, 1) of channel 0 is in patch (0, 0), sub-position 1 -> folded channel 1.
    assert folded[0, 1, 0, 0] == x[0, 0, 0, 1]


def test_patch_model_learns_a_fixed_target():
    torch.manual_seed(0)
    model = ConditionalUNet(tiny_config(1, 28, patch_size=2))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, t, y = torch.randn(8, 1, 28, 28), torch.randint(0, 100, (8,)), torch.randint(0, 10, (8,))
    target = torch.randn(8, 1, 28, 28)
    losses = []
    for _ in range(60):
        loss = (model(x, t, y) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("overrides, message", [
    (dict(patch_size=3), "patch size 3 does not divide"),
    (dict(patch_size=2, channel_mults=(1, 2, 4)), "cannot be halved 2 times"),
    (dict(attention_levels=(3,)), "attention levels"),
])
def test_bad_configs_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        UNetConfig(**overrides)


def test_configs_saved_before_patches_load_as_plain_pixels():
    config = UNetConfig().to_dict()
    del config["patch_size"]
    assert UNetConfig.from_dict(config).patch_size == 1
    loaded = load_model(default_digits_checkpoint(), precision="fp32")  # strict load of the shipped weights
    assert loaded.model_config.patch_size == 1


def test_flop_count_of_the_default_model():
    """The 0.83 GFLOP per forward in MODEL_CARD.md; a backward costs about twice a forward."""
    from diffadapt.diffusion.unet import count_flops

    forward, train = count_flops(UNetConfig())
    assert abs(forward / 1e9 - 0.825) < 0.005
    assert 2.5 < train / forward < 3.5
