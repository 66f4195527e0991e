"""Each method's loss against a hand-computed case, and the pieces they are built from."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from diffadapt.adapt.alignment.cdan import CDAN, conditional_adversarial_loss, entropy_weights, multilinear_map
from diffadapt.adapt.alignment.dann import DANN, domain_adversarial_loss
from diffadapt.adapt.augment import strong, weak
from diffadapt.adapt.config import AdaptConfig, preset
from diffadapt.adapt.methods import Batch, SupervisedOnly, TrainingProgress, prediction_entropy
from diffadapt.adapt.modules.networks import DigitClassifier
from diffadapt.adapt.registry import make_method
from diffadapt.adapt.self_training.fixmatch import FixMatch, align_distribution, pseudo_label_loss
from diffadapt.errors import InputError


def schedule(reversal: float = 1.0) -> TrainingProgress:
    return TrainingProgress(torch.tensor(0.5), torch.tensor(reversal))


def test_entropy_of_uniform_and_certain_predictions():
    uniform = torch.zeros(2, 10)
    certain = torch.tensor([[100.0] + [0.0] * 9])
    assert prediction_entropy(uniform).item() == pytest.approx(math.log(10))
    assert prediction_entropy(certain).item() == pytest.approx(0.0, abs=1e-6)


def test_domain_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 3.0]])  # one source row, two target rows
    loss, accuracy = domain_adversarial_loss(logits, source_count=1)
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1)) + math.log(1 + math.exp(-2))) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert accuracy.item() == 1.0


def test_multilinear_map_is_the_flattened_outer_product():
    f = torch.tensor([[1.0, 2.0]])
    g = torch.tensor([[0.25, 0.75]])
    assert multilinear_map(f, g).tolist() == [[0.25, 0.5, 0.75, 1.5]]


def test_entropy_weights_by_hand():
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])  # source: certain, uncertain; target: uncertain
    weights = entropy_weights(p, source_count=2)
    w_certain, w_half = 1 + math.exp(0.0), 1 + math.exp(-math.log(2))  # H = 0 and H = log 2
    assert weights.tolist() == pytest.approx([w_certain / (w_certain + w_half), w_half / (w_certain + w_half), 1.0])


def test_conditional_loss_weights_examples():
    logits = torch.tensor([[3.0, 0.0], [0.0, 3.0], [0.0, 3.0]])
    weights = torch.tensor([0.75, 0.25, 1.0])
    loss, _ = conditional_adversarial_loss(logits, weights, source_count=2)
    ce = F.cross_entropy(logits, torch.tensor([0, 0, 1]), reduction="none")
    assert loss.item() == pytest.approx(float((weights * ce).sum() / 2.0))


def test_pseudo_label_loss_by_hand():
    strong_logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    q = torch.tensor([[0.97, 0.03], [0.4, 0.6], [0.02, 0.98]])  # confident, unsure, confident
    loss, rate = pseudo_label_loss(strong_logits, q, threshold=0.95)
    expected = (math.log(1 + math.exp(-2)) + 0.0 + math.log(2)) / 3  # CE to labels 0 and 1, the unsure row masked
    assert loss.item() == pytest.approx(expected, rel=1e-6) and rate.item() == pytest.approx(2 / 3)


def test_distribution_alignment_by_hand():
    q = torch.tensor([[0.5, 0.5]])
    aligned = align_distribution(q, torch.tensor([0.8, 0.2]), torch.tensor([0.5, 0.5]))
    assert aligned[0].tolist() == pytest.approx([0.8, 0.2])


def test_dann_objective_is_class_loss_plus_domain_loss():
    torch.manual_seed(0)
    model = DigitClassifier("cnn3").eval()
    method = DANN(model.extractor.features).eval()
    x, xt, y = torch.randn(4, 3, 28, 28), torch.randn(4, 3, 28, 28), torch.tensor([0, 1, 2, 3])
    loss, metrics = method(model, Batch(x, y, xt), schedule())
    features = model.extractor(torch.cat([x, xt]))
    class_loss = F.cross_entropy(model.classifier(features[:4]), y)
    domain_loss, _ = domain_adversarial_loss(method.discriminator(features), 4)
    assert loss.item() == pytest.approx((class_loss + domain_loss).item(), rel=1e-5)
    assert set(metrics) == set(method.metric_names)


def test_reversal_weight_reaches_the_extractor_with_its_sign():
    """lambda scales the adversarial gradient into F, negated; D's own gradient is unchanged."""
    torch.manual_seed(0)
    x, xt, y = torch.randn(4, 3, 28, 28), torch.randn(4, 3, 28, 28), torch.tensor([0, 1, 2, 3])
    grads = {}
    for lam in (0.0, 0.5):
        torch.manual_seed(1)
        model = DigitClassifier("cnn3").eval()
        method = DANN(model.extractor.features).eval()
        loss, _ = method(model, Batch(x, y, xt), schedule(lam))
        loss.backward()
        grads[lam] = (model.extractor.body[0].weight.grad.clone(), method.discriminator[0].weight.grad.clone())
    torch.manual_seed(1)
    model = DigitClassifier("cnn3").eval()
    method = DANN(model.extractor.features).eval()
    features = model.extractor(torch.cat([x, xt]))
    domain_loss, _ = domain_adversarial_loss(method.discriminator(features), 4)
    domain_loss.backward()
    adversarial = model.extractor.body[0].weight.grad
    torch.testing.assert_close(grads[0.5][0], grads[0.0][0] - 0.5 * adversarial, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(grads[0.5][1], grads[0.0][1])


def test_cdan_and_fixmatch_objectives_run_and_backpropagate():
    torch.manual_seed(0)
    x, xt, y = torch.randn(8, 3, 28, 28), torch.randn(8, 3, 28, 28), torch.arange(8) % 10
    for method_name in ("cdan", "fixmatch"):
        model = DigitClassifier("cnn3")
        method = make_method(preset("matched", method_name), model)
        batch = Batch(x, y, weak(xt), strong(xt) if method.needs_strong_view else None)
        loss, metrics = method(model, batch, schedule())
        loss.backward()
        assert torch.isfinite(loss) and set(metrics) == set(method.metric_names)
        assert model.extractor.body[0].weight.grad is not None
    assert isinstance(make_method(AdaptConfig(method="source"), DigitClassifier("cnn3")), SupervisedOnly)


def test_fixmatch_teacher_follows_the_student_by_ema():
    torch.manual_seed(0)
    model = DigitClassifier("cnn3")
    method = FixMatch(model, teacher_decay=0.9)
    before = [p.clone() for p in method.teacher.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    method.after_step(model)
    for old, new, student in zip(before, method.teacher.parameters(), model.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * student)
    method.train()
    assert all(not m.training for m in method.teacher.modules() if isinstance(m, torch.nn.Dropout2d))


def test_cdan_discriminator_sees_class_times_feature_dimensions():
    assert CDAN(128).discriminator[0].in_features == 1280


def test_strong_view_keeps_shape_and_changes_images():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 28, 28)
    y = strong(x)
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.allclose(x, y)


def test_config_checks_fields_and_reads_earlier_versions():
    with pytest.raises(InputError, match="epochs"):
        AdaptConfig(epochs=0)
    with pytest.raises(InputError, match="method"):
        AdaptConfig(method="magic")
    with pytest.raises(InputError, match="target-val-oracle needs eval_every"):
        AdaptConfig(selection="target-val-oracle")
    old = AdaptConfig.from_document({"mode": "dann", "recipe": "ours", "network": "report", "select_on_val": True, "eval_every": 1})
    assert (old.method, old.recipe, old.network, old.selection) == ("dann", "matched", "cnn3", "target-val-oracle")
    with pytest.raises(InputError, match=r"config\.lr"):
        AdaptConfig.from_document({"lr": "fast"}, source="run/config.json")
