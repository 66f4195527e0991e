"""Virtual adversarial training, VADA and DIRT-T: each term against a hand computation, and each method against
source-only on the rotated two moons of test_methods_adapt.py."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from diffadapt.adapt.alignment.vada import VADA
from diffadapt.adapt.methods import Batch, SupervisedOnly, TrainingProgress, prediction_entropy
from diffadapt.adapt.modules.vat import POWER_ITERATION_XI, kl_divergence, perturbation_passes, virtual_adversarial_loss
from diffadapt.adapt.source_free.dirtt import DIRTT
from tests.adapt.test_methods_adapt import ToyModel, moons


def test_kl_divergence_by_hand():
    p, q = torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[0.0, 0.0]])  # softmax: (1/4, 3/4) and (1/2, 1/2)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert abs(float(kl_divergence(p, q)) - expected) < 1e-6
    assert float(kl_divergence(q, q)) == 0.0


def test_the_perturbation_is_the_power_iteration_of_the_kl_hessian_for_a_linear_model():
    """For logits W x the Hessian of KL(p || softmax(W(x + r))) at r = 0 is W^T (diag(p) - p p^T) W; one power
    iteration from the random start d gives r = epsilon H d / ||H d||, and L_v is the KL at that r."""
    torch.manual_seed(0)
    weight = torch.randn(5, 7, dtype=torch.float64)
    model = nn.Linear(7, 5, bias=False).double()
    model.weight.data.copy_(weight)
    x = torch.randn(3, 7, dtype=torch.float64)
    radius = 0.5
    torch.manual_seed(1)
    loss = virtual_adversarial_loss(model, x, radius)
    torch.manual_seed(1)
    start = torch.randn_like(x)
    p = F.softmax(x @ weight.T, dim=1)
    expected = []
    for i in range(len(x)):
        hessian = weight.T @ (torch.diag(p[i]) - torch.outer(p[i], p[i])) @ weight
        direction = hessian @ start[i]
        r = radius * direction / direction.norm()
        expected.append(kl_divergence(x[i : i + 1] @ weight.T, (x[i : i + 1] + r) @ weight.T))
    # xi > 0 adds a third-order error, small against the KL itself
    loss = float(loss.detach())
    assert abs(loss - float(torch.stack(expected).mean())) < 1e-3 * loss, (loss, expected)
    assert POWER_ITERATION_XI < radius


def test_perturbation_passes_switch_off_dropout_and_keep_the_running_statistics():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    before = model[1].running_mean.clone()
    x = torch.randn(16, 4)
    with perturbation_passes(model):
        first, second = model(x), model(x)
        assert not model[2].training
    assert torch.equal(first, second)  # no dropout: two passes agree
    assert torch.equal(model[1].running_mean, before)
    assert model[2].training and model[1].momentum == 0.1
    model(x)
    assert not torch.equal(model[1].running_mean, before)  # outside, batch norm learns again


def test_vada_loss_is_the_sum_of_its_terms():
    torch.manual_seed(0)
    model = ToyModel().train()
    vada = VADA(32, domain_weight=0.5, source_vat_weight=0.0, target_weight=2.0, radius=1.0).train()
    xs, ys = moons(64, 0)
    xt, _ = moons(64, 1, degrees=30)
    torch.manual_seed(5)
    loss, metrics = vada(model, Batch(xs, ys, xt), TrainingProgress(torch.tensor(0.0), torch.tensor(0.0)))
    assert set(metrics) == set(VADA.metric_names)
    features = model.extractor(torch.cat([xs, xt]))
    logits = model.classifier(features)
    labels = torch.cat([torch.zeros(64), torch.ones(64)]).long()
    domain = F.cross_entropy(vada.discriminator(features), labels)
    torch.manual_seed(5)
    vat = virtual_adversarial_loss(model, xt, 1.0)
    expected = F.cross_entropy(logits[:64], ys) + domain + 2.0 * (prediction_entropy(logits[64:]) + vat)
    assert torch.allclose(loss, expected, atol=1e-5), (loss, expected)
    # the feature extractor gets -lambda_d of the discriminator's gradient: check it on the domain term alone
    vada.zero_grad()
    model.zero_grad()
    silent = VADA(32, domain_weight=0.5, source_vat_weight=0.0, target_weight=0.0, radius=3.5)
    silent.discriminator.load_state_dict(vada.discriminator.state_dict())
    silent.train()
    loss, _ = silent(model, Batch(xs, torch.full_like(ys, 0), xt), TrainingProgress(torch.tensor(0.0), torch.tensor(0.0)))
    grad_through_reversal = torch.autograd.grad(loss - F.cross_entropy(model(xs), torch.full_like(ys, 0)), model.extractor[0].weight)[0]
    reference = torch.autograd.grad(-0.5 * F.cross_entropy(silent.discriminator(model.extractor(torch.cat([xs, xt]))), labels),
                                    model.extractor[0].weight)[0]
    assert torch.allclose(grad_through_reversal, reference, atol=1e-5)


def _train_source_only(xs: torch.Tensor, ys: torch.Tensor, steps: int = 500) -> ToyModel:
    model = ToyModel().train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    method = SupervisedOnly()
    for _ in range(steps):
        index = torch.randint(0, len(xs), (64,))
        loss, _ = method(model, Batch(xs[index], ys[index]), TrainingProgress(torch.tensor(0.0), torch.tensor(0.0)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    model.train()
    return accuracy


def test_vada_beats_source_only_on_rotated_moons():
    xs, ys = moons(600, 0)
    xt, _ = moons(600, 100, degrees=30)  # unlabelled: the target's labels are never drawn
    xv, yv = moons(600, 200, degrees=30)
    results = {}
    for name in ("source", "vada"):
        torch.manual_seed(0)
        model = ToyModel().train()
        method = SupervisedOnly() if name == "source" else VADA(32, domain_weight=0.1, source_vat_weight=1.0, target_weight=1.0, radius=0.3)
        method.train()
        optimizer = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.05, momentum=0.9)
        for _ in range(200):
            s, t = torch.randint(0, 600, (64,)), torch.randint(0, 600, (64,))
            loss, _ = method(model, Batch(xs[s], ys[s], xt[t]), TrainingProgress(torch.tensor(0.0), torch.tensor(0.0)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        results[name] = _accuracy(model, xv, yv)
    assert results["vada"] > results["source"] + 0.1, results


def test_dirtt_refines_a_source_model_on_rotated_moons_without_a_source():
    torch.manual_seed(0)
    xs, ys = moons(600, 0)
    xt, _ = moons(600, 100, degrees=40)
    xv, yv = moons(600, 200, degrees=40)
    model = _train_source_only(xs, ys)
    source_only = _accuracy(model, xv, yv)
    # the radius is small against the gap between the moons (0.1 noise): a larger ball spans both classes
    dirtt = DIRTT(model, proximal_weight=10.0, radius=0.3).train()
    assert not DIRTT.needs_source
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for step in range(400):
        dirtt.refresh(model, xt, None, step, 50)  # type: ignore[arg-type]
        if step % 50 == 0:
            assert all(torch.equal(a, b) for a, b in zip(dirtt.teacher.state_dict().values(), model.state_dict().values()))
        index = torch.randint(0, 600, (64,))
        loss, metrics = dirtt(model, Batch(None, torch.full((64,), -1), xt[index]), TrainingProgress(torch.tensor(0.0), torch.tensor(0.0)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert set(metrics) == set(DIRTT.metric_names)
    assert not any(p.requires_grad for p in dirtt.teacher.parameters())
    adapted = _accuracy(model, xv, yv)
    assert adapted > source_only + 0.05, (source_only, adapted)


def test_dirtt_proximal_term_is_zero_right_after_the_teacher_is_renewed():
    torch.manual_seed(0)
    model = ToyModel().train()
    dirtt = DIRTT(model, proximal_weight=1.0, radius=3.5).train()
    xt, _ = moons(64, 3)
    dirtt.refresh(model, xt, None, 0, 10)  # type: ignore[arg-type]
    _, metrics = dirtt(model, Batch(None, torch.full((64,), -1), xt), TrainingProgress(torch.tensor(0.0), torch.tensor(0.0)))
    assert abs(float(metrics["teacher_kl"])) < 1e-6
