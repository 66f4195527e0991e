"""Training: the loss falls on real data, resume is exact, checkpoints are complete and checked."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from diffadapt.data import TensorImages, read_source
from diffadapt.diffusion.checkpoint import DIGITS_KIND, load_checkpoint
from diffadapt.diffusion.train import TrainConfig, epoch_order, learning_rate
from diffadapt.errors import InputError
from tests.conftest import shared_file
from tests.diffusion.helpers import embedded_classes, train_tiny


def test_loss_falls_on_real_mnistm(tmp_path):
    train = read_source(shared_file("mnistm28.npz"))["train"].subset(np.arange(4096))
    data = TensorImages.from_digitset(train)
    result = train_tiny(tmp_path / "run", data, steps=120, log_every=10)
    history = result.loss_history
    assert len(history) == 12
    assert np.mean(history[-3:]) < 0.6 * np.mean(history[:2]), history


def test_resume_continues_bit_for_bit(tmp_path):
    data = embedded_classes("mnistm", (0, 1, 2))
    straight = train_tiny(tmp_path / "straight", data, steps=24, checkpoint_every=8)
    first = train_tiny(tmp_path / "split", data, steps=24, checkpoint_every=8, stop_after=11)
    assert first.steps == 11
    resumed = train_tiny(tmp_path / "split", data, steps=24, checkpoint_every=8, resume=True)
    assert resumed.steps == straight.steps == 24
    _, weights_a = load_checkpoint(tmp_path / "straight", DIGITS_KIND)
    _, weights_b = load_checkpoint(tmp_path / "split", DIGITS_KIND)
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    state_a = torch.load(tmp_path / "straight" / "state.pt", weights_only=True)
    state_b = torch.load(tmp_path / "split" / "state.pt", weights_only=True)
    for key in state_a["model"]:
        assert torch.equal(state_a["model"][key], state_b["model"][key]), key


def test_training_leaves_its_curves(tmp_path):
    data = embedded_classes("mnist", (3, 4))
    train_tiny(tmp_path / "run", data, steps=12, log_every=4)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    assert all(float(r["loss"]) > 0 and float(r["lr"]) > 0 and float(r["images_per_s"]) > 0 for r in rows)
    assert (tmp_path / "run" / "curves.png").stat().st_size > 5000


def test_resume_keeps_the_earlier_curve(tmp_path):
    data = embedded_classes("mnist", (3, 4))
    train_tiny(tmp_path / "run", data, steps=12, log_every=4, checkpoint_every=4, stop_after=8)
    train_tiny(tmp_path / "run", data, steps=12, log_every=4, checkpoint_every=4, resume=True)
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [4, 8, 12]


def test_checkpoint_config_saved_next_to_weights(tmp_path):
    data = embedded_classes("mnist", (3, 4))
    train_tiny(tmp_path / "run", data, steps=5)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["kind"] == DIGITS_KIND and config["step"] == 5
    assert config["model"]["in_channels"] == 1 and config["schedule"]["num_timesteps"] == 100
    assert config["data"]["domain"] == "mnist" and "normalisation" in config["data"]
    assert not [p for p in (tmp_path / "run").iterdir() if "tmp" in p.name]


def test_checkpoint_of_another_model_is_refused(tmp_path):
    data = embedded_classes("mnist", (3, 4))
    train_tiny(tmp_path / "run", data, steps=2)
    config_path = tmp_path / "run" / "config.json"
    config = json.loads(config_path.read_text())
    config["kind"] = "diffadapt/digit-judge"
    config_path.write_text(json.dumps(config))
    with pytest.raises(InputError, match="expected 'diffadapt/conditional-ddpm'"):
        load_checkpoint(tmp_path / "run", DIGITS_KIND)


def test_epoch_order_is_a_permutation_and_reproducible():
    a = epoch_order(103, 10, seed=1, epoch=4)
    assert a.shape == (10, 10) and len(set(a.flatten().tolist())) == 100
    assert torch.equal(a, epoch_order(103, 10, seed=1, epoch=4))
    assert not torch.equal(a, epoch_order(103, 10, seed=1, epoch=5))


def test_learning_rate_warmup_and_cosine():
    config = TrainConfig(lr=1.0, warmup_steps=10, lr_schedule="cosine")
    assert learning_rate(config, 0, 100) == pytest.approx(0.1)
    assert learning_rate(config, 10, 100) == pytest.approx(1.0)
    assert learning_rate(config, 100, 100) == pytest.approx(0.1)


def test_cli_trains_a_patch_model_and_refuses_a_bad_one(run_cli, tmp_path):
    args = ["--data", "mnist", "--steps", "2", "--batch-size", "8", "--base-channels", "16", "--channel-mults", "1,2",
            "--attention-levels", "1", "--res-blocks", "1", "--no-progress"]
    code, _, err = run_cli("digits", "train", "--out", tmp_path / "bad", *args, "--patch-size", "3")
    assert code == 2 and "patch size 3 does not divide image size 28" in err and not (tmp_path / "bad").exists()
    assert run_cli("digits", "train", "--out", tmp_path / "run", *args, "--patch-size", "2")[0] == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["patch_size"] == 2


def test_init_from_fine_tunes_a_checkpoint(run_cli, tmp_path):
    from diffadapt.diffusion.models import load_model

    args = ["--data", "mnist", "--batch-size", "8", "--base-channels", "16", "--channel-mults", "1,2", "--attention-levels", "1",
            "--res-blocks", "1", "--timesteps", "100", "--no-progress"]
    assert run_cli("digits", "train", "--out", tmp_path / "start", *args, "--steps", "3", "--lr", "1e-2")[0] == 0
    config = json.loads((tmp_path / "start" / "config.json").read_text())
    (tmp_path / "start" / "config.json").write_text(json.dumps({**config, "sampling": {"method": "unipc", "steps": 7, "chosen_by": "hand"}}))
    # A vanishing learning rate: the fine-tuned weights must be the start's, not the seed's random ones.
    fine = ["--data", "mnist", "--batch-size", "8", "--steps", "2", "--lr", "1e-12", "--seed", "5", "--no-progress"]
    assert run_cli("digits", "train", "--out", tmp_path / "fine", "--init-from", tmp_path / "start", *fine, "--stop-after", "1")[0] == 0
    assert run_cli("digits", "train", "--out", tmp_path / "fine", "--resume", "--no-progress")[0] == 0  # keeps what it started from
    start, tuned = load_model(tmp_path / "start"), load_model(tmp_path / "fine")
    assert tuned.model_config == start.model_config and tuned.schedule.config == start.schedule.config
    for (key, a), b in zip(start.model.state_dict().items(), tuned.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-3), key
    assert tuned.config["data"]["extra"]["init_from"] == str(tmp_path / "start")
    assert tuned.sampling_defaults == start.sampling_defaults and tuned.sampling_defaults["method"] == "unipc"
    # The same run without --init-from starts elsewhere.
    assert run_cli("digits", "train", "--out", tmp_path / "fresh", *args, "--steps", "1", "--lr", "1e-12", "--seed", "5")[0] == 0
    fresh = load_model(tmp_path / "fresh")
    assert not all(torch.allclose(a, b, atol=1e-3) for a, b in zip(start.model.state_dict().values(), fresh.model.state_dict().values()))


@pytest.mark.parametrize(("extra", "message"), [
    (["--base-channels", "32"], "--init-from takes the network"),
    (["--timesteps", "50"], "--init-from takes the network"),
    (["--resume"], "--init-from starts a new run"),
])
def test_init_from_refuses_conflicting_options(run_cli, tmp_path, extra, message):
    code, _, err = run_cli("digits", "train", "--out", tmp_path / "run", "--init-from", "default", "--data", "mnist", "--steps", "1", *extra)
    assert code == 2 and message in err and not (tmp_path / "run").exists()
    code, _, err = run_cli("digits", "train", "--out", tmp_path / "run", "--init-from", tmp_path / "nowhere", "--data", "mnist", "--steps", "1")
    assert code == 2 and "nowhere" in err and not (tmp_path / "run").exists()
    (tmp_path / "notes.txt").write_text("not a run")
    code, _, err = run_cli("digits", "train", "--out", tmp_path / "run", "--init-from", tmp_path / "notes.txt", "--data", "mnist", "--steps", "1")
    assert code == 2 and "notes.txt: is a file, but a run folder" in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize(("interval", "message"), [([900, -5], "sampling.guidance_interval: guidance interval must be 0 <= lo <= hi"),
                                                   ([10, 900], "sampling: guidance interval 10..900 must satisfy")])
def test_a_checkpoint_with_a_bad_guidance_interval_is_refused_naming_it(tmp_path, interval, message):
    from diffadapt.diffusion.models import load_model

    train_tiny(tmp_path / "run", embedded_classes("mnistm", (1,)), steps=1)  # T = 100
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    (tmp_path / "run" / "config.json").write_text(json.dumps({**config, "sampling": {"guidance_interval": interval}}))
    with pytest.raises(InputError, match="config.json: " + message):
        load_model(tmp_path / "run")


def _nan_model(state):
    key = next(iter(state["model"]))
    state["model"][key] = torch.full_like(state["model"][key], float("nan"))


def _wrong_moment(state):
    first = next(iter(state["optimizer"]["state"].values()))
    first["exp_avg"] = torch.zeros(3)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda state: state.clear() or state.update(model=[]), "must hold step, model"),
    (lambda state: state.update(step=-5), "step must be a whole number"),
    (lambda state: state.update(step="abc"), "step must be a whole number"),
    (lambda state: state.update(step=torch.tensor([1, 2])), "step must be a whole number"),
    (lambda state: state.update(model={"w": torch.zeros(2)}), "weights do not fit"),
    (_nan_model, "NaN or infinite"),
    (lambda state: state.update(noise_generator=[torch.zeros(3, dtype=torch.uint8)]), "noise generator does not fit"),
    (lambda state: state.update(noise_generator=[]), "one generator state per process"),
    (lambda state: state["optimizer"].update(param_groups=[]), "optimizer or noise generator does not fit"),
    (_wrong_moment, "optimizer exp_avg does not fit"),
])
def test_resume_refuses_a_damaged_state(tmp_path, edit, message):
    data = embedded_classes("mnist", (3, 4))
    train_tiny(tmp_path / "run", data, steps=4, checkpoint_every=2, stop_after=2)
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    edit(state)
    torch.save(state, tmp_path / "run" / "state.pt")
    with pytest.raises(InputError, match=message):
        train_tiny(tmp_path / "run", data, steps=4, checkpoint_every=2, resume=True)


@pytest.mark.parametrize(("row", "message"), [
    (b"-inf,0,1,1,1\n-1e300,0,1,1,1\n1.5,0,1,1,1\n", None),  # rows the run did not write are dropped
    (b"1,0,\xff\xfe,1,1\n", "not UTF-8"),
    (b"1,0," + b"9" * 200_000 + b",1,1\n", "not readable CSV"),
])
def test_resume_with_a_damaged_metrics_file(tmp_path, row, message):
    data = embedded_classes("mnist", (3, 4))
    train_tiny(tmp_path / "run", data, steps=4, log_every=1, checkpoint_every=2, stop_after=2)
    (tmp_path / "run" / "metrics.csv").write_bytes(b"step,epoch,loss,lr,images_per_s\n" + row)
    if message is None:
        train_tiny(tmp_path / "run", data, steps=4, log_every=1, checkpoint_every=2, resume=True)
        steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "run" / "metrics.csv"))]
        assert steps == [3, 4]
    else:
        with pytest.raises(InputError, match=message):
            train_tiny(tmp_path / "run", data, steps=4, log_every=1, checkpoint_every=2, resume=True)


def test_odd_base_channels_are_refused():
    from diffadapt.diffusion.unet import UNetConfig

    with pytest.raises(InputError, match="base_channels must be even"):
        UNetConfig(base_channels=7)


def test_the_cpu_recipe_sets_a_new_runs_starting_values_under_the_users_options(run_cli, tmp_path):
    from diffadapt.apps.digits.training import DIGIT_RECIPES
    from diffadapt.diffusion.models import DIGIT_SAMPLING_FALLBACK, load_model

    recipe = DIGIT_RECIPES["cpu"]
    code, out, _ = run_cli("digits", "train", "--out", tmp_path / "run", "--recipe", "cpu", "--data", "mnist", "--steps", "2",
                           "--batch-size", "8", "--no-progress")
    step, accuracy = recipe.measured
    assert code == 0 and f"recipe cpu: step {step:,} ({accuracy:.0%} course accuracy on real MNIST-M when measured) in about" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["steps"] == 2 and config["train"]["batch_size"] == 8  # the user's options win
    assert {k: config["train"][k] for k in ("lr", "warmup_steps", "lr_schedule")} == {k: recipe.train[k] for k in ("lr", "warmup_steps", "lr_schedule")}
    assert {k: config["model"][k] for k in recipe.model} == recipe.model
    # it samples as the recipe says
    assert load_model(tmp_path / "run").defaults == recipe.sampling.over(DIGIT_SAMPLING_FALLBACK)
    code, _, err = run_cli("digits", "train", "--out", tmp_path / "run", "--resume", "--recipe", "cpu", "--no-progress")
    assert code == 2 and "--recipe cpu starts a new network" in err
    code, _, err = run_cli("digits", "train", "--out", tmp_path / "x", "--recipe", "gpu", "--no-progress")
    assert code == 2 and "invalid choice: 'gpu'" in err and not (tmp_path / "x").exists()


def test_without_a_recipe_a_new_network_on_the_cpu_gets_the_cpu_recipe_and_a_continued_one_its_own(run_cli, tmp_path):
    from diffadapt.apps.digits.training import DIGIT_RECIPES, resolve_recipe

    recipe = DIGIT_RECIPES["cpu"]
    code, out, _ = run_cli("digits", "train", "--out", tmp_path / "run", "--data", "mnist", "--steps", "2", "--batch-size", "8", "--no-progress")
    assert code == 0 and "recipe cpu: step" in out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert {k: config["model"][k] for k in recipe.model} == recipe.model and config["train"]["lr"] == recipe.train["lr"]
    code, out, _ = run_cli("digits", "train", "--out", tmp_path / "fine", "--init-from", tmp_path / "run", "--data", "mnist",
                           "--steps", "1", "--batch-size", "8", "--no-progress")
    assert code == 0 and "recipe cpu" not in out  # fine-tuning keeps its start's network and gets the standard settings
    assert json.loads((tmp_path / "fine" / "config.json").read_text())["model"] == config["model"]
    assert resolve_recipe("auto", torch.device("cuda"), False) == "standard"
    assert resolve_recipe("auto", torch.device("cpu"), True) == "standard"
    assert resolve_recipe("standard", torch.device("cpu"), False) == "standard"
