"""Generation: class conditioning works, the graded folder's names, count and determinism, figures."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from diffadapt.api import load_digits
from diffadapt.apps.digits.generate import graded_names, initial_noise, sample_digits, to_images
from diffadapt.data import load_embedded
from diffadapt.diffusion.models import load_model
from diffadapt.diffusion.sampler import SamplerConfig
from diffadapt.diffusion.sampling import SamplingSettings
from diffadapt.errors import InputError
from tests.diffusion.helpers import embedded_classes, train_tiny


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("digits") / "run"
    train_tiny(run, embedded_classes("mnistm", (0, 1, 2)), steps=20)
    return run


def unit_rows(images: np.ndarray) -> np.ndarray:
    """Flattened images, centred and scaled to unit norm: correlation ignores background level and contrast."""
    rows = images.reshape(len(images), -1).astype(np.float64)
    rows -= rows.mean(axis=1, keepdims=True)
    return rows / (np.linalg.norm(rows, axis=1, keepdims=True) + 1e-9)


def test_two_class_model_generates_the_class_asked_for(tmp_path):
    data = embedded_classes("mnist", (0, 1))
    train_tiny(tmp_path / "run", data, steps=300, lr=2e-3)
    loaded = load_model(tmp_path / "run", precision="fp32")
    labels = torch.tensor([0] * 20 + [1] * 20)
    samples = to_images(sample_digits(loaded, labels, initial_noise(40, (1, 28, 28), 0), SamplerConfig("ddpm", clip_x0=True), 3.0, 0, progress=False))

    # Classify by correlation with the mean real image of each class (real images the model never saw).
    real = load_embedded("mnist")["val"]
    templates = unit_rows(np.stack([real.images[real.labels == c].mean(axis=0) for c in (0, 1)]))
    predictions = (unit_rows(samples) @ templates.T).argmax(axis=1)
    accuracy = (predictions == labels.numpy()).mean()
    assert accuracy >= 0.75, f"conditional samples match their class only {accuracy:.0%} of the time (chance 50%)"


def test_generate_names_count_and_determinism(run_cli, tiny_run, tmp_path):
    args = ["--ckpt", tiny_run, "--per-class", "3", "--steps", "4", "--method", "ddim", "--eta", "1.0", "--precision", "fp32"]
    assert run_cli("digits", "generate", tmp_path / "a", *args, "--seed", "5")[0] == 0
    assert run_cli("digits", "generate", tmp_path / "b", *args, "--seed", "5")[0] == 0
    assert run_cli("digits", "generate", tmp_path / "c", *args, "--seed", "6")[0] == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(graded_names(3)) == [f"{d}_{i:03d}.png" for d in range(10) for i in (1, 2, 3)]
    with Image.open(tmp_path / "a" / "7_002.png") as image:
        assert image.size == (28, 28) and image.mode == "RGB"
    same = all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)
    different = any((tmp_path / "a" / n).read_bytes() != (tmp_path / "c" / n).read_bytes() for n in names)
    assert same and different


@pytest.mark.parametrize("method", ["ddpm", "dpmpp-2m", "unipc"])
def test_eta_with_a_sampler_that_has_none_is_refused_not_ignored(run_cli, tiny_run, tmp_path, method):
    args = ["--ckpt", tiny_run, "--per-class", "1", "--steps", "3", "--precision", "fp32", "--method", method]
    code, _, err = run_cli("digits", "generate", tmp_path / "a", *args, "--eta", "0.5")
    assert code == 2 and f"eta 0.5 applies to DDIM only; the {method} sampler has no eta" in err and not (tmp_path / "a").exists()
    assert run_cli("digits", "generate", tmp_path / "b", *args)[0] == 0  # the checkpoint's own eta is not forced on it


def test_spacing_option_is_used_and_a_repeating_one_refused(run_cli, tiny_run, tmp_path):
    args = ["--ckpt", tiny_run, "--per-class", "1", "--steps", "4", "--method", "dpmpp-2m", "--precision", "fp32"]
    code, out, _ = run_cli("digits", "generate", tmp_path / "q", *args, "--spacing", "quadratic")
    assert code == 0 and "4 steps (quadratic)" in out
    assert run_cli("digits", "generate", tmp_path / "t", *args, "--spacing", "trailing")[0] == 0
    assert any((tmp_path / "q" / n).read_bytes() != (tmp_path / "t" / n).read_bytes() for n in graded_names(1))
    model = load_digits(tiny_run, device="cpu", precision="fp32")  # the Python API takes it too
    quadratic = model.generate(1, n=2, method="dpmpp-2m", steps=4, spacing="quadratic")
    assert not np.array_equal(quadratic, model.generate(1, n=2, method="dpmpp-2m", steps=4, spacing="trailing"))
    with pytest.raises(InputError, match="spacing"):
        model.generate(1, spacing="cosine")
    # T = 100: 30 quadratic steps would visit some timesteps near 0 twice.
    code, _, err = run_cli("digits", "generate", tmp_path / "r", *args[:4], "--steps", "30", "--spacing", "quadratic")
    assert code == 2 and "repeat" in err and err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_generate_into_existing_empty_folder_and_refuses_full_one(run_cli, tiny_run, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    args = ["--ckpt", tiny_run, "--per-class", "1", "--steps", "2"]
    assert run_cli("digits", "generate", out, *args)[0] == 0
    assert len(list(out.iterdir())) == 10
    code, _, err = run_cli("digits", "generate", out, *args)
    assert code == 2 and "not empty" in err
    assert run_cli("digits", "generate", out, *args, "--overwrite")[0] == 0


def test_generate_with_a_checkpoint_of_another_model(run_cli, tmp_path):
    from diffadapt.evaluate.judge import default_judge_checkpoint

    code, _, err = run_cli("digits", "generate", tmp_path / "out", "--ckpt", default_judge_checkpoint())
    assert code == 2 and "digit-judge" in err and not (tmp_path / "out").exists()


def test_a_config_declaring_a_huge_network_is_refused_before_it_is_built(run_cli, tmp_path):
    from diffadapt.diffusion.models import default_digits_checkpoint

    ckpt = tmp_path / "huge"
    shutil.copytree(default_digits_checkpoint(), ckpt)
    config = json.loads((ckpt / "config.json").read_text())
    config["model"].update(base_channels=1024, channel_mults=[64], attention_levels=[])  # 144 GB of float32 weights
    (ckpt / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli("digits", "grid", tmp_path / "g.png", "--ckpt", ckpt)
    assert code == 2 and "weights do not fit" in err and not (tmp_path / "g.png").exists()


def test_missing_checkpoint(run_cli, tmp_path):
    code, _, err = run_cli("digits", "generate", tmp_path / "out", "--ckpt", tmp_path / "nope")
    assert code == 2 and "nope" in err


def test_grid_and_reverse_figures(run_cli, tiny_run, tmp_path):
    args = ["--ckpt", tiny_run, "--steps", "10"]
    assert run_cli("digits", "grid", tmp_path / "grid.png", *args)[0] == 0
    code, out, _ = run_cli("digits", "reverse", tmp_path / "reverse.png", *args)
    assert code == 0
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size[0] >= 10 * 56 and grid.size[1] >= 10 * 56
    with Image.open(tmp_path / "reverse.png") as strip:
        assert strip.size[0] >= 6 * 84


def test_reverse_strip_ends_in_the_grid_image(tiny_run):
    from diffadapt.apps.digits.figures import frame_times, grid_inputs, sample_grid, sample_reverse
    from diffadapt.images import model_to_uint8, nchw_to_nhwc

    loaded = load_model(tiny_run, precision="fp32")
    labels, x_T = grid_inputs(loaded, seed=0)
    assert torch.equal(x_T[0], x_T[10]) and labels[10] == 1  # column 0 shares its noise across digits
    # Stochastic steps: the strip must draw the grid image's own per-step noise, not the batch's.
    sampler = SamplerConfig("ddim", steps=5, eta=1.0)
    grid, states = sample_grid(loaded, sampler, 2.0, seed=0, digit=1)
    alone = sample_reverse(loaded, sampler, 2.0, seed=0, digit=1, progress=False)
    assert max(states) == max(alone) and torch.equal(alone[max(alone)][0], x_T[10])
    # Equal up to float rounding: a batch of 100 and a batch of 1 may take different kernels.
    assert sorted(states) == sorted(alone) and all(torch.allclose(states[t], alone[t], atol=1e-4) for t in states)
    assert np.array_equal(nchw_to_nhwc(model_to_uint8(states[0]))[0], grid[10])
    assert np.abs(nchw_to_nhwc(model_to_uint8(alone[0]))[0].astype(int) - grid[10]).max() <= 1
    assert frame_times(list(range(100, -1, -1))) == [100, 80, 60, 40, 20, 0]


def test_generate_with_a_guidance_interval(run_cli, tiny_run, tmp_path):
    args = ["--ckpt", tiny_run, "--per-class", "1", "--steps", "4", "--guidance", "3"]
    code, out, _ = run_cli("digits", "generate", tmp_path / "a", *args, "--guidance-interval", "20:60")
    assert code == 0 and "guidance s 3 at t 20..60" in out and len(list((tmp_path / "a").iterdir())) == 10
    for interval, message in (("60:20", "0 <= lo <= hi <= 99"), ("0:100", "0 <= lo <= hi <= 99")):
        code, _, err = run_cli("digits", "generate", tmp_path / "b", *args, "--guidance-interval", interval)
        assert code == 2 and message in err and not (tmp_path / "b").exists()
    code, _, err = run_cli("digits", "generate", tmp_path / "b", *args, "--guidance-interval", "early")
    assert code == 2 and "--guidance-interval" in err and len(err.strip().splitlines()) == 1


def test_guidance_defaults_come_from_the_checkpoint(tiny_run):
    from diffadapt.diffusion.guidance import Guidance

    loaded = load_model(tiny_run, precision="fp32")
    loaded.defaults = dataclasses.replace(loaded.defaults, guidance=2.5, guidance_interval=(10, 50))
    assert loaded.guidance() == Guidance(2.5, (10, 50))
    assert loaded.guidance(4.0) == Guidance(4.0, (10, 50))
    assert loaded.guidance(None, "all") == Guidance(2.5)
    assert loaded.guidance(None, (0, 99)) == Guidance(2.5, (0, 99))
    loaded.defaults = dataclasses.replace(loaded.defaults, guidance_high_frequency=0.25)
    assert loaded.guidance(4.0) == Guidance(4.0, (10, 50), 0.25)  # the checkpoint's share stays with a new scale
    assert loaded.sampling(SamplingSettings(guidance_high_frequency=1.0))[1] == Guidance(2.5, (10, 50))


def test_generate_with_frequency_split_guidance(run_cli, tiny_run, tmp_path):
    args = ["--ckpt", tiny_run, "--per-class", "1", "--steps", "4", "--guidance", "3"]
    code, out, _ = run_cli("digits", "generate", tmp_path / "a", *args, "--guidance-high-frequency", "0.25")
    assert code == 0 and "high-frequency share 0.25" in out
    for bad in ("-1", "nan", "lots"):
        code, _, err = run_cli("digits", "generate", tmp_path / "b", *args, "--guidance-high-frequency", bad)
        assert code == 2 and "guidance-high-frequency" in err.replace("_", "-") and not (tmp_path / "b").exists(), err


def untrained_run(run_dir, **model) -> None:
    """A valid digit run folder of another shape (class count, channels), weights as initialised."""
    from diffadapt.diffusion.checkpoint import DIGITS_KIND, save_checkpoint
    from diffadapt.diffusion.schedule import ScheduleConfig
    from diffadapt.diffusion.unet import ConditionalUNet
    from tests.diffusion.helpers import tiny_config

    config = tiny_config(**model)
    torch.manual_seed(0)
    document = {"kind": DIGITS_KIND, "model": config.to_dict(), "schedule": ScheduleConfig(100, 1e-3, 0.2).to_dict(),
                "sampling": {"method": "ddim", "steps": 3}, "step": 0}
    save_checkpoint(run_dir, document, ConditionalUNet(config).state_dict(), None)


def test_a_model_of_fewer_classes_is_refused_before_any_work_naming_the_key(run_cli, tmp_path):
    """Digits it has no class for (label num_classes is its null class) must not be drawn, silently or not."""
    untrained_run(tmp_path / "five", num_classes=5)
    for args in (("digits", "generate", tmp_path / "out", "--per-class", "1"), ("digits", "grid", tmp_path / "grid.png"),
                 ("digits", "reverse", tmp_path / "r.png", "--digit", "5"), ("faces", "eta-grid", tmp_path / "eta.png", "--digit", "7"),
                 ("digits", "train", "--init-from", tmp_path / "five", "--data", "mnistm", "--out", tmp_path / "train")):
        code, _, err = run_cli(*args, *(() if "--init-from" in args else ("--ckpt", tmp_path / "five")))
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and "num_classes is 5" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["five"]  # nothing written
    assert run_cli("digits", "reverse", tmp_path / "r.png", "--digit", "4", "--ckpt", tmp_path / "five", "--steps", "2")[0] == 0


def test_a_gray_model_writes_gray_digits_and_is_scored(run_cli, tmp_path):
    untrained_run(tmp_path / "gray", channels=1)
    code, _, err = run_cli("digits", "generate", tmp_path / "out", "--ckpt", tmp_path / "gray", "--per-class", "1", "--steps", "2")
    assert code == 0, err
    with Image.open(tmp_path / "out" / "3_001.png") as image:
        assert image.mode == "L" and image.size == (28, 28)
    from diffadapt.apps.digits.scoring import score_images

    gray = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8)
    scores = score_images(gray, np.arange(10), judge="default")
    assert scores == score_images(gray.expand(-1, 3, -1, -1), np.arange(10), judge="default")
