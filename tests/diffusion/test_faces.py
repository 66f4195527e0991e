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
    from diffadapt.apps.faces.models import digit_noise_model, load_face_model
    from diffadapt.diffusion.models import load_model

    train_tiny(tmp_path / "digits", embedded_classes("mnistm", (5,)), steps=2)
    assert digit_noise_model(load_model(tmp_path / "digits"), 5, 2.0).clip_x0
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


def test_faces_train_on_the_celeba_zip(run_cli, tmp_path):
    from tests.conftest import shared_file

    archive = shared_file("celeba_10k.zip")
    code, stdout, _ = run_cli("faces", "train", archive, "--out", tmp_path / "run", "--size", "32", "--limit", "16",
                              "--steps", "2", "--batch-size", "8", "--base-channels", "32", "--no-progress")
    assert code == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"]["num_images"] == 16
