"""The gradient reversal layer, the networks, the schedules and the captured-graph-friendly SGD."""

from __future__ import annotations

import math

import pytest
import torch

from diffadapt.adapt.alignment.dann import DANN, domain_adversarial_loss
from diffadapt.adapt.augment import weak as augment
from diffadapt.adapt.modules.grl import reverse_gradient
from diffadapt.adapt.modules.networks import CNN3Extractor, DigitClassifier
from diffadapt.adapt.optim import TensorSGD, annealed_lr, reversal_coefficient


def test_gradient_reversal_flips_and_scales():
    x = torch.randn(4, 5, requires_grad=True)
    y = reverse_gradient(x, torch.tensor(0.3))
    assert torch.equal(y, x)
    (y * torch.arange(5.0)).sum().backward()
    torch.testing.assert_close(x.grad, -0.3 * torch.arange(5.0).expand(4, 5))


def test_report_extractor_gives_128_features():
    extractor = CNN3Extractor()
    assert extractor(torch.randn(2, 3, 28, 28)).shape == (2, 128)
    model = DigitClassifier("cnn3")
    assert model(torch.randn(3, 3, 28, 28)).shape == (3, 10)
    assert DANN(128).discriminator(model.extractor(torch.randn(3, 3, 28, 28))).shape == (3, 2)
    for name in ("lenet", "wide"):
        assert DigitClassifier(name)(torch.randn(2, 3, 28, 28)).shape == (2, 10)


def test_schedules_of_the_paper():
    assert reversal_coefficient(0.0) == 0.0
    assert reversal_coefficient(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert annealed_lr(0.01, 0.0) == 0.01
    assert annealed_lr(0.01, 1.0) == pytest.approx(0.01 / 11**0.75)


def test_domain_loss_labels_source_zero_target_one():
    logits = torch.tensor([[5.0, -5.0], [5.0, -5.0], [-5.0, 5.0]])
    loss, accuracy = domain_adversarial_loss(logits, source_count=2)
    assert accuracy.item() == 1.0 and loss.item() < 1e-3


def test_tensor_sgd_matches_torch_sgd():
    torch.manual_seed(0)
    a = torch.nn.Linear(4, 3)
    b = torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    ours = TensorSGD(list(a.parameters()), momentum=0.9, weight_decay=5e-4, device=torch.device("cpu"))
    reference = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    for step in range(5):
        x = torch.randn(8, 4)
        ours.lr.fill_(0.1 / (step + 1))
        for group in reference.param_groups:
            group["lr"] = 0.1 / (step + 1)
        for model, optimizer in ((a, ours), (b, reference)):
            optimizer.zero_grad()
            model(x).square().sum().backward()
            optimizer.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)


def test_augment_keeps_shape_and_range():
    x = torch.rand(16, 3, 28, 28)
    y = augment(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.equal(x, y)


def test_instance_standardisation_by_hand():
    """Each image and channel to zero mean and unit variance (eps 1e-5), whatever its brightness and contrast."""
    import torch

    from diffadapt.adapt.modules.networks import DigitClassifier

    model = DigitClassifier("cnn3", 3, instance_norm=True)
    x = torch.tensor([[0.0, 2.0], [4.0, 6.0]]).expand(2, 3, 2, 2).clone()
    x[1] = x[1] * 10 + 7  # another brightness and contrast: the same standardised image
    expected = (torch.tensor([[0.0, 2.0], [4.0, 6.0]]) - 3.0) / (5.0 + 1e-5) ** 0.5
    standardised = model.extractor.standardise(x.reshape(6, 1, 2, 2)).reshape(2, 3, 2, 2)
    assert torch.allclose(standardised[0, 1], expected, atol=1e-6)
    assert torch.allclose(standardised[1, 2], (x[1, 2] - 37.0) / (500.0 + 1e-5) ** 0.5, atol=1e-5)
    images = torch.rand(2, 3, 28, 28)
    model.eval()
    assert torch.allclose(model(images), model(images * 3 + 1), atol=1e-4)  # brightness and contrast are gone
