"""faces generate / eta-grid / interpolate / train, on small models made here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from diffadapt.apps.faces.models import load_noise
from diffadapt.diffusion.course_unet import CourseFaceUNet, golden_weights
from diffadapt.errors import InputError
from tests.diffusion.helpers import embedded_classes, train_tiny


@pytest.fixture(scope="module")
def diffusers_unet(tmp_path_factory):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    model = diffusers.UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8,
    )
    folder = tmp_path_factory.mktemp("hub") / "unet"
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def noise_dir(tmp_path):
    folder = tmp_path / "noise"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    torch.save(torch.randn(1, 3, 32, 32, generator=g), folder / "00.pt")
    torch.save(torch.randn(3, 32, 32, generator=g), folder / "01.pt")
    return folder


def test_noise_shapes(tmp_path):
    torch.save(torch.randn(3, 8, 8), tmp_path / "a.pt")
    assert load_noise(tmp_path / "a.pt").shape == (1, 3, 8, 8)
    for bad in (torch.randn(2, 3, 8, 8), torch.randn(1, 4, 8, 8), torch.zeros(1, 3, 8, 8, dtype=torch.int64), {"x": torch.randn(1)}):
        torch.save(bad, tmp_path / "b.pt")
        with pytest.raises(InputError, match="b.pt"):
            load_noise(tmp_path / "b.pt")


def test_generate_with_a_diffusers_folder_and_gt(run_cli, diffusers_unet, noise_dir, tmp_path):
    out = tmp_path / "out"
    code, stdout, _ = run_cli("faces", "generate", noise_dir, out, "--unet", diffusers_unet, "--steps", "5")
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["00.png", "01.png"]
    image = np.asarray(Image.open(out / "00.png"))
    assert image.shape == (32, 32, 3) and image.min() == 0 and image.max() == 255  # min-max normalised
    gt = tmp_path / "gt"
    gt.mkdir()
    Image.fromarray(image).save(gt / "00.png")
    Image.fromarray(255 - np.asarray(Image.open(out / "01.png"))).save(gt / "01.png")
    code, stdout, _ = run_cli("faces", "generate", noise_dir, tmp_path / "out2", "--unet", diffusers_unet, "--steps", "5", "--gt", gt)
    assert code == 0 and "00.png  MSE 0.000" in stdout and "mean MSE" in stdout
    assert all((out / n).read_bytes() == (tmp_path / "out2" / n).read_bytes() for n in ("00.png", "01.png"))
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(gt / "01.png")  # a ground truth of another size
    code, _, err = run_cli("faces", "generate", noise_dir, tmp_path / "out3", "--unet", diffusers_unet, "--steps", "5", "--gt", gt)
    assert code == 2 and "ground truth is 16x16" in err and not (tmp_path / "out3").exists()


def test_generate_with_the_course_unet_file(run_cli, noise_dir, tmp_path):
    torch.save(golden_weights(CourseFaceUNet()), tmp_path / "UNet.pt")
    code, stdout, _ = run_cli("faces", "generate", noise_dir, tmp_path / "out", "--unet", tmp_path / "UNet.pt", "--steps", "2")
    assert code == 0 and "course UNet" in stdout
    assert len(list((tmp_path / "out").iterdir())) == 2


def test_generate_bad_noise_file_writes_nothing(run_cli, diffusers_unet, noise_dir, tmp_path):
    torch.save(torch.randn(5), noise_dir / "02.pt")
    code, _, err = run_cli("faces", "generate", noise_dir, tmp_path / "out", "--unet", diffusers_unet)
    assert code == 2 and "02.pt" in err and not (tmp_path / "out").exists()


def _edited_copy(folder, tmp_path, config_edit=None, weights_edit=None):
    import shutil

    from safetensors.torch import load_file, save_file

    copy = tmp_path / "edited" / "unet"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, **(config_edit or {})}))
    if weights_edit:
        weights = load_file(copy / "diffusion_pytorch_model.safetensors")
        weights_edit(weights)
        save_file(weights, copy / "diffusion_pytorch_model.safetensors")
    return copy


@pytest.mark.parametrize("config_edit, weights_edit, message", [
    ({"num_class_embeds": 10}, None, "class-conditional UNet2DModel"),
    ({"layers_per_block": 100000}, None, "layers_per_block must be an integer in 1..16, got 100000"),
    ({"layers_per_block": "2"}, None, "layers_per_block must be an integer"),
    ({"block_out_channels": [16] * 40}, None, "block_out_channels must be a list of 1..8"),
    ({"in_channels": 4}, None, "in_channels is 4"),
    ({"some_future_option": True}, None, "unknown UNet2DModel setting 'some_future_option'"),
    ({"norm_num_groups": 7}, None, "diffusers cannot build this UNet2DModel"),
    ({"_class_name": "UNet2DConditionModel"}, None, "neither a diffusers UNet2DModel nor a diffadapt faces run (kind None, _class_name 'UNet2DConditionModel')"),
    (None, lambda w: w.pop("conv_in.weight"), "1 missing keys (e.g. conv_in.weight)"),
    (None, lambda w: w.update(extra=torch.zeros(1)), "1 unexpected keys (e.g. extra)"),
    (None, lambda w: w.update({"conv_in.bias": torch.zeros(3)}), "keys of the wrong shape"),
    ({"attention_head_dim": -1}, None, "attention_head_dim must hold integers in 1..4096, got -1"),
    ({"add_attention": "no"}, None, "add_attention must be bool, got 'no'"),
    ({"sample_size": 1e30}, None, "sample_size must be int | tuple[int, int] | null"),
    # Finite but overflowing weights: the images would all be black.
    (None, lambda w: w.update({"conv_in.weight": torch.full_like(w["conv_in.weight"], 1e38)}), "produced NaN or infinite values"),
])
def test_bad_diffusers_folders_are_refused_before_anything_is_written(run_cli, diffusers_unet, noise_dir, tmp_path, config_edit, weights_edit,
                                                                       message):
    # diffusers' own loader would sample with a random conv_in, crash on class labels or never finish building.
    folder = _edited_copy(diffusers_unet, tmp_path, config_edit, weights_edit)
    code, _, err = run_cli("faces", "generate", noise_dir, tmp_path / "out", "--unet", folder, "--steps", "2")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_unet_that_builds_but_cannot_run_is_refused_on_loading(monkeypatch, diffusers_unet):
    # The probe's case (attention_head_dim -1: weights fit, the first forward fails) is now refused by the range
    # check; any other such setting meets the load-time forward instead of a traceback mid-sampling.
    import diffusers

    from diffadapt.apps.faces.models import load_face_model

    def broken_forward(self, *args, **kwargs):
        raise RuntimeError("invalid shape dimension -32")

    monkeypatch.setattr(diffusers.UNet2DModel, "forward", broken_forward)
    with pytest.raises(InputError, match=r"config.json: diffusers cannot run this UNet2DModel \(RuntimeError: invalid shape dimension -32\)"):
        load_face_model(diffusers_unet)


def test_a_diffusers_pipeline_folder_and_its_scheduler(run_cli, diffusers_unet, noise_dir, tmp_path):
    from diffadapt.apps.faces.models import load_face_model

    pipeline = _edited_copy(diffusers_unet, tmp_path).parent  # FOLDER/unet
    (pipeline / "scheduler").mkdir()
    scheduler = {"_class_name": "DDPMScheduler", "num_train_timesteps": 500, "beta_start": 1e-4, "beta_end": 0.02, "clip_sample": True}
    (pipeline / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler))
    assert load_face_model(pipeline).schedule.config.num_timesteps == 500
    assert run_cli("faces", "generate", noise_dir, tmp_path / "out", "--unet", pipeline, "--steps", "2")[0] == 0
    for edit, message in [({"prediction_type": "v_prediction"}, "prediction_type is 'v_prediction'"),
                          ({"beta_start": 0.999, "beta_end": 0.999}, "leave alpha_bar_T = 1e-1500"),  # black images before
                          ({"beta_start": 1e-300}, "beta_start: must be at least 1e-06"),  # a division by zero before
                          ({"num_train_timesteps": 0}, "num_train_timesteps: must be at least 1")]:
        (pipeline / "scheduler" / "scheduler_config.json").write_text(json.dumps({**scheduler, **edit}))
        code, _, err = run_cli("faces", "generate", noise_dir, tmp_path / "out2", "--unet", pipeline, "--steps", "2")
        assert code == 2 and message in err and "scheduler_config.json" in err and not (tmp_path / "out2").exists(), err


def test_noise_far_larger_than_the_training_images_is_refused(run_cli, diffusers_unet, tmp_path):
    # The fixture was built with sample_size 32: sides up to 64 (twice) are taken, 96 is not.
    noise = tmp_path / "noise"
    noise.mkdir()
    torch.save(torch.randn(1, 3, 64, 64), noise / "big.pt")
    assert run_cli("faces", "generate", noise, tmp_path / "ok", "--unet", diffusers_unet, "--steps", "1")[0] == 0
    torch.save(torch.randn(1, 3, 33, 31), noise / "big.pt")
    code, _, err = run_cli("faces", "generate", noise, tmp_path / "out", "--unet", diffusers_unet, "--steps", "1")
    assert code == 2 and f"{noise}: noise of size 33x31 does not fit" in err and not (tmp_path / "out").exists()
    torch.save(torch.randn(1, 3, 96, 64), noise / "big.pt")
    code, _, err = run_cli("faces", "generate", noise, tmp_path / "out", "--unet", diffusers_unet, "--steps", "1")
    assert code == 2 and "trained on 32x32 images: sides must be at most 64" in err and not (tmp_path / "out").exists()


def test_eta_grid_and_interpolation_with_a_face_model(run_cli, diffusers_unet, noise_dir, tmp_path):
    for i in range(2, 4):
        torch.save(torch.randn(1, 3, 32, 32), noise_dir / f"0{i}.pt")
    assert run_cli("faces", "eta-grid", tmp_path / "eta.png", "--unet", diffusers_unet, "--noise-dir", noise_dir, "--steps", "3")[0] == 0
    assert run_cli("faces", "interpolate", tmp_path / "interp.png", "--unet", diffusers_unet, "--noise-dir", noise_dir, "--steps", "3")[0] == 0
    width, height = Image.open(tmp_path / "interp.png").size
    assert width > 11 * 32 and height > 2 * 32


def test_eta_grid_and_interpolation_with_a_digit_checkpoint(run_cli, tmp_path):
    train_tiny(tmp_path / "digits", embedded_classes("mnistm", (5,)), steps=3)
    args = ["--ckpt", tmp_path / "digits", "--digit", "5", "--steps", "4", "--precision", "fp32"]
    assert run_cli("faces", "eta-grid", tmp_path / "eta.png", *args)[0] == 0
    assert run_cli("faces", "interpolate", tmp_path / "interp.png", *args)[0] == 0
    rows, cols = 5, 4
    width, height = Image.open(tmp_path / "eta.png").size
    assert width > cols * 84 and height > rows * 84


def test_digit_checkpoint_keeps_its_clipping_and_faces_do_not(tmp_path, diffusers_unet):
    from diffadapt.apps.faces.models import load_face_model
    from diffadapt.diffusion.models import load_model

    train_tiny(tmp_path / "digits", embedded_classes("mnistm", (5,)), steps=2)
    assert load_model(tmp_path / "digits").noise_model(2.0, 5).clip_x0
    assert not load_face_model(diffusers_unet).clip_x0


def test_faces_train_few_steps(run_cli, tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 256, size=(40, 30, 3), dtype=np.uint8)).save(folder / f"{i:06d}.jpg")
    code, stdout, _ = run_cli("faces", "train", folder, "--out", tmp_path / "run", "--size", "16", "--steps", "3",
                              "--batch-size", "4", "--base-channels", "16", "--no-progress")
    assert code == 0, stdout
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["kind"] == "diffadapt/unconditional-ddpm" and config["step"] == 3 and config["data"]["size"] == 16
    # The trained run is itself a face model for the DDIM commands.
    noise = tmp_path / "noise"
    noise.mkdir()
    torch.save(torch.randn(1, 3, 16, 16), noise / "00.pt")
    assert run_cli("faces", "generate", noise, tmp_path / "out", "--unet", tmp_path / "run", "--steps", "2")[0] == 0


@pytest.mark.parametrize("data_edit, message", [
    ({"size": 32}, "data.size 32 differs from model.image_size 16"),
    ({"size": 1024}, "data.size must be in 16..256, got 1024"),
    ({"size": True}, "lacks source, size or limit"),
    ({"extra": {"limit": -3}}, "lacks source, size or limit"),
    ({"extra": []}, "lacks source, size or limit"),
])
def test_faces_resume_refuses_an_edited_data_section(run_cli, tmp_path, data_edit, message):
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, size=(20, 20, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    args = ["--out", tmp_path / "run", "--size", "16", "--batch-size", "4", "--base-channels", "16", "--no-progress"]
    assert run_cli("faces", "train", folder, *args, "--steps", "1")[0] == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    config["data"].update(data_edit)
    (tmp_path / "run" / "config.json").write_text(json.dumps(config))
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    code, _, err = run_cli("faces", "train", folder, "--out", tmp_path / "run", "--no-progress", "--resume")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before


def test_faces_train_on_the_celeba_zip(run_cli, tmp_path):
    from tests.conftest import shared_file

    archive = shared_file("celeba_10k.zip")
    code, stdout, _ = run_cli("faces", "train", archive, "--out", tmp_path / "run", "--size", "32", "--limit", "16",
                              "--steps", "2", "--batch-size", "8", "--base-channels", "32", "--no-progress")
    assert code == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["num_images"] == 16


def test_faces_eta_with_a_solver_is_refused(run_cli, diffusers_unet, noise_dir, tmp_path):
    code, _, err = run_cli("faces", "generate", noise_dir, tmp_path / "out", "--unet", diffusers_unet, "--method", "unipc", "--eta", "1")
    assert code == 2 and "eta 1 applies to DDIM only; the unipc sampler has no eta" in err and not (tmp_path / "out").exists()
