"""The trainer on small parts of the embedded domains: no method reads target labels, label-free selection
never touches them, each run starts fresh, a seed fixes the result."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffadapt.adapt.config import preset
from diffadapt.adapt.trainer import train_adaptation
from diffadapt.apps.adaptation.runs import DomainData, load_domain
from diffadapt.data.memory import TensorImages
from diffadapt.errors import InputError


def part(data: TensorImages, count: int, seed: int) -> TensorImages:
    """``count`` images drawn at random (the embedded splits are sorted by class)."""
    index = torch.from_numpy(np.random.default_rng(seed).permutation(len(data))[:count])
    return TensorImages(data.images[index], data.labels[index], data.domain)


def smaller(domain: DomainData, train: int, val: int) -> DomainData:
    return DomainData(domain.spec, domain.domain, part(domain.train, train, 1), part(domain.val, val, 2))


@pytest.fixture(scope="module")
def domains():
    return smaller(load_domain("mnistm", 3, 28), 1024, 300), smaller(load_domain("usps", 3, 28), 512, 200)


def small(method: str, recipe: str = "report", **overrides):
    return preset(recipe, method, **{"epochs": 1, "batch_size": 64, **overrides})


def permuted(data: TensorImages) -> TensorImages:
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(data)))
    return TensorImages(data.images, data.labels[order], data.domain)


@pytest.mark.parametrize("method", ["dann", "cdan", "fixmatch", "vada", "source"])
def test_target_labels_are_never_read(domains, method):
    source, target = domains
    config = small(method)
    a = train_adaptation(config, source.train, source.val, target.train, target.val, torch.device("cpu"), progress=False)
    b = train_adaptation(config, source.train, source.val, permuted(target.train), target.val, torch.device("cpu"), progress=False)
    state_a, state_b = a.model.state_dict(), b.model.state_dict()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    assert a.target_val_accuracy == b.target_val_accuracy


def test_target_mode_uses_target_labels(domains):
    source, target = domains
    config = small("target")
    a = train_adaptation(config, source.train, source.val, target.train, target.val, torch.device("cpu"), progress=False)
    b = train_adaptation(config, source.train, source.val, permuted(target.train), target.val, torch.device("cpu"), progress=False)
    assert any(not torch.equal(a.model.state_dict()[k], b.model.state_dict()[k]) for k in a.model.state_dict())


def test_each_mode_starts_from_its_own_fresh_initialisation(domains):
    source, target = domains
    alone = train_adaptation(small("target"), source.train, source.val, target.train, target.val, torch.device("cpu"), progress=False)
    train_adaptation(small("source"), source.train, source.val, target.train, target.val, torch.device("cpu"), progress=False)
    after = train_adaptation(small("target"), source.train, source.val, target.train, target.val, torch.device("cpu"), progress=False)
    assert all(torch.equal(alone.model.state_dict()[k], after.model.state_dict()[k]) for k in alone.model.state_dict())


def test_dann_without_reversal_is_source_training_and_with_it_is_not(domains):
    source, target = domains
    from dataclasses import replace

    cpu = torch.device("cpu")
    silent = train_adaptation(replace(small("dann", epochs=6), reversal_max=0.0), source.train, source.val, target.train, target.val, cpu, progress=False)
    alone = train_adaptation(small("source", epochs=6), source.train, source.val, target.train, target.val, cpu, progress=False)
    adversarial = train_adaptation(small("dann", epochs=6), source.train, source.val, target.train, target.val, cpu, progress=False)
    # lambda = 0: the domain head learns but sends nothing back, so the classifier learns the source as alone.
    assert silent.source_val_accuracy > 0.6 and abs(silent.source_val_accuracy - alone.source_val_accuracy) < 0.08
    assert {"loss", "source_accuracy", "domain_accuracy", "reversal"} <= set(adversarial.history[-1])
    assert adversarial.steps == 6 * (len(source.train) // 64)
    extractor = [k for k in silent.model.state_dict() if k.startswith("extractor.") and k.endswith("weight")]
    assert any(not torch.equal(silent.model.state_dict()[k], adversarial.model.state_dict()[k]) for k in extractor)


def test_same_seed_same_result(domains):
    source, target = domains
    config = small("dann")
    a = train_adaptation(config, source.train, source.val, target.train, target.val, torch.device("cpu"), progress=False)
    b = train_adaptation(config, source.train, source.val, target.train, target.val, torch.device("cpu"), progress=False)
    assert all(torch.equal(a.model.state_dict()[k], b.model.state_dict()[k]) for k in a.model.state_dict())


def test_ours_matches_the_digit_height_of_the_domains():
    from diffadapt.apps.adaptation.runs import load_pair

    source, target, config = load_pair("mnistm", "usps", preset("matched", "dann"))
    assert (config.source_box, config.target_box) == (0, 20)
    plain = load_domain("usps", 3, 28)
    assert target.val.images.shape == plain.val.images.shape == (len(plain.val), 3, 28, 28)
    border = torch.ones(28, 28, dtype=torch.bool)
    border[4:24, 4:24] = False
    # the embedded USPS digits are white on black: the added frame is black, the stretched images have ink there
    assert int(target.val.images[:, :, border].max()) == 0 < int(plain.val.images[:, :, border].max())
    assert torch.equal(source.val.images, load_domain("mnistm", 3, 28).val.images)
    _, _, report = load_pair("mnistm", "usps", preset("report", "dann"))
    assert (report.frame, report.source_box, report.target_box) == ("fill", 0, 0)


def test_label_free_selection_never_touches_target_labels(domains):
    source, target = domains
    config = small("dann", epochs=3, selection="source-val")
    a = train_adaptation(config, source.train, source.val, target.train, target.val, torch.device("cpu"), progress=False)
    b = train_adaptation(config, source.train, source.val, permuted(target.train), permuted(target.val), torch.device("cpu"), progress=False)
    assert a.chosen_epoch == b.chosen_epoch and a.chosen_epoch in (1, 2, 3)
    assert all(torch.equal(a.model.state_dict()[k], b.model.state_dict()[k]) for k in a.model.state_dict())
    assert all("target_val_accuracy" not in record for record in a.history)
    assert [r["source_val_accuracy"] for r in a.history][a.chosen_epoch - 1] == max(r["source_val_accuracy"] for r in a.history)


def test_oracle_selection_reads_target_val_only_when_asked(domains):
    source, target = domains
    config = small("dann", epochs=2, eval_every=1, selection="target-val-oracle")
    result = train_adaptation(config, source.train, source.val, target.train, target.val, torch.device("cpu"), progress=False)
    best = max(r["target_val_accuracy"] for r in result.history)
    assert result.history[result.chosen_epoch - 1]["target_val_accuracy"] == best == result.target_val_accuracy


def test_keeping_the_teacher_changes_which_weights_are_kept_not_the_training(domains):
    source, target = domains
    cpu = torch.device("cpu")
    student = train_adaptation(small("fixmatch", "matched", epochs=2), source.train, source.val, target.train, target.val, cpu, progress=False)
    config = small("fixmatch", "matched", epochs=2, final_weights="teacher")
    teacher = train_adaptation(config, source.train, source.val, target.train, target.val, cpu, progress=False)
    assert student.last_step_target_val == teacher.last_step_target_val and set(teacher.last_step_target_val) == {"student", "teacher"}
    assert student.target_val_accuracy == student.last_step_target_val["student"]
    assert teacher.target_val_accuracy == teacher.last_step_target_val["teacher"]
    assert [r["loss"] for r in student.history] == [r["loss"] for r in teacher.history]
    assert any(not torch.equal(student.model.state_dict()[k], teacher.model.state_dict()[k]) for k in student.model.state_dict())
    # the teacher kept is an average that read no target labels either
    again = train_adaptation(config, source.train, source.val, permuted(target.train), target.val, cpu, progress=False)
    assert all(torch.equal(again.model.state_dict()[k], teacher.model.state_dict()[k]) for k in teacher.model.state_dict())


@pytest.mark.parametrize("method, overrides", [("dann", {}), ("source", {}), ("fixmatch", {"teacher_decay": 0.0})])
def test_keeping_a_teacher_needs_one(method, overrides):
    with pytest.raises(InputError, match="final_weights"):
        preset("matched", method, final_weights="teacher", **overrides)


def test_target_pool_all_adds_val_images_but_never_their_labels(domains):
    """With target_pool all the val images join the unlabelled pool (training changes), and permuting val's
    labels changes nothing of the training; the baselines refuse it."""
    source, target = domains
    config = small("fixmatch", "matched", target_pool="all")
    a = train_adaptation(config, source.train, source.val, target.train, target.val, torch.device("cpu"), progress=False)
    b = train_adaptation(config, source.train, source.val, target.train, permuted(target.val), torch.device("cpu"), progress=False)
    c = train_adaptation(small("fixmatch", "matched"), source.train, source.val, target.train, target.val, torch.device("cpu"), progress=False)
    for key in a.model.state_dict():
        assert torch.equal(a.model.state_dict()[key], b.model.state_dict()[key]), key
    assert any(not torch.equal(a.model.state_dict()[k], c.model.state_dict()[k]) for k in a.model.state_dict())
    assert torch.allclose(a.target_stats.mean, torch.cat([target.train.images, target.val.images]).float().div(255).mean((0, 2, 3)), atol=1e-5)
    for method in ("source", "target"):
        with pytest.raises(InputError, match="target_pool all"):
            small(method, target_pool="all")
