"""digits evaluate and train-judge at a tiny scale: the judge's accuracy and Fréchet distance, the course
classifier's accuracy when given, the accuracy score when real images are given."""

from __future__ import annotations

import json
import shutil
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffadapt.data import load_embedded
from diffadapt.errors import InputError
from diffadapt.evaluate.generated import score_digits
from diffadapt.evaluate.judge import JudgeNet, load_judge
from diffadapt.evaluate.lenet import CourseLeNet


def write_folder(folder, images: np.ndarray, labels: np.ndarray) -> None:
    folder.mkdir()
    for index, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image).save(folder / f"{label}_{index:03d}.png")


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    val = load_embedded("mnistm")["val"]
    pick = np.concatenate([np.flatnonzero(val.labels == c)[:5] for c in range(10)])
    folder = tmp_path_factory.mktemp("gen") / "images"
    write_folder(folder, val.images[pick], val.labels[pick])
    return folder


def test_score_digits_counts_the_course_classifier_right(real_folder):
    from diffadapt.evaluate.generated import read_generated_folder

    images, labels, _ = read_generated_folder(real_folder)

    class Oracle(torch.nn.Module):  # a classifier that answers the true label for the first 30 images, 0 after
        def forward(self, x):
            out = torch.zeros(len(x), 10)
            out[:, 0] = 1
            return out

    scores = score_digits(images, labels, Oracle())
    assert scores.overall == pytest.approx(float((labels == 0).mean()))
    assert scores.per_class[0] == 1.0 and scores.per_class[3] == 0.0
    assert scores.frechet is None and "no course classifier" not in scores.table()


def test_evaluate_without_a_classifier_gives_the_judge_scores(run_cli, real_folder, tmp_path):
    code, out, err = run_cli("digits", "evaluate", real_folder, "--json", tmp_path / "s.json")
    assert code == 0, err
    assert "no course classifier given" in out and "judge Fréchet distance" in out
    scores = json.loads((tmp_path / "s.json").read_text())
    assert scores["overall"] is None and scores["judge_accuracy"] > 0.7 and scores["frechet"] > 0


def test_evaluate_with_a_classifier_and_real_images(run_cli, real_folder, tmp_path):
    torch.manual_seed(0)
    torch.save({"state_dict": CourseLeNet().state_dict()}, tmp_path / "Classifier.pth")
    code, out, err = run_cli("digits", "evaluate", real_folder, "--classifier", tmp_path / "Classifier.pth", "--real", "mnistm",
                             "--score-seeds", "0", "--no-judge")
    assert code == 0, err
    assert "course classifier" in out and "classification accuracy score" in out and "judge" not in out


def test_train_judge_tiny(run_cli, tmp_path):
    splits = load_embedded("mnist")
    np.savez(tmp_path / "digits.npz", x_train=splits["train"].images[:512, :, :, 0], y_train=splits["train"].labels[:512],
             x_test=splits["val"].images[:, :, :, 0], y_test=splits["val"].labels)
    code, out, err = run_cli("digits", "train-judge", "--data", tmp_path / "digits.npz", "--out", tmp_path / "judge", "--epochs", "1")
    assert code == 0, err
    judge = load_judge(tmp_path / "judge")
    assert isinstance(judge.model, JudgeNet) and judge.mu.shape == (128,) and "floors: halves" in out
    config = json.loads((tmp_path / "judge" / "config.json").read_text())
    assert set(config["floors_by_size"]) == {"100", "200"}  # 1,000 val images: floors up to half of them


def test_evaluate_refuses_odd_folders(run_cli, real_folder, tmp_path):
    val = load_embedded("mnistm")["val"]
    odd = tmp_path / "odd"
    odd.mkdir()
    # '²'.isdigit() is true and int('²') fails; "10_001" was read as a 1 and "3_1_2" as a 3 by the first character
    for name in ("\u00b2_000.png", "10_001.png", "3_1_2.png", "9_.png"):
        Image.fromarray(val.images[0]).save(odd / name)
        code, _, err = run_cli("digits", "evaluate", odd, "--no-judge")
        assert code == 2 and "must be the digit it shows" in err and len(err.strip().splitlines()) == 1, name
        (odd / name).unlink()
    one = tmp_path / "one"
    write_folder(one, val.images[:1], val.labels[:1])
    code, _, err = run_cli("digits", "evaluate", one)
    assert code == 2 and "at least 2 images" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("floors", [{"100": "abc"}, {"100": [1]}, {"100": None}, [1]])
def test_judge_config_floors_must_be_numbers(tmp_path, floors):
    judge = tmp_path / "judge"
    shutil.copytree(str(files("diffadapt") / "assets" / "judge_mnistm"), judge)
    config = json.loads((judge / "config.json").read_text())
    config["floors_by_size"] = floors
    (judge / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="floors_by_size of numbers"):
        load_judge(judge)


def tampered_judge(tmp_path, edit) -> Path:
    """A copy of the shipped judge whose weights file went through ``edit`` (a dict of tensors, changed in place)."""
    from safetensors.torch import load_file, save_file

    judge = tmp_path / "judge"
    shutil.copytree(str(files("diffadapt") / "assets" / "judge_mnistm"), judge)
    tensors = load_file(judge / "model.safetensors")
    edit(tensors)
    save_file(tensors, judge / "model.safetensors", metadata={"kind": "diffadapt/digit-judge"})
    return judge


def set_entry(key, index, value):
    def edit(tensors):
        tensors[key][index] = value
    return edit


def negate_sigma(tensors):
    tensors["real.sigma"] = -tensors["real.sigma"]


def indefinite_sigma(tensors):  # symmetric, one eigenvalue far below 0
    tensors["real.sigma"][0, 0] = -1000.0


@pytest.mark.parametrize("edit, key, message", [
    (set_entry("real.mu", 3, 1e20), "real.mu", "magnitude 1e+20"),
    (set_entry("real.mu", 3, float("nan")), "real.mu", "NaN or infinite"),
    (set_entry("real.sigma", (0, 5), 50.0), "real.sigma", "not symmetric"),
    (negate_sigma, "real.sigma", "not positive semi-definite"),
    (indefinite_sigma, "real.sigma", "not positive semi-definite"),
    (set_entry("real.sigma", (2, 2), 1e13), "real.sigma", "magnitude 1e+13"),
])
def test_judge_real_statistics_that_are_no_gaussian_are_refused(run_cli, real_folder, tmp_path, edit, key, message):
    """A judge whose real mean or covariance would give an inf, negative or astronomic distance is refused on load."""
    judge = tampered_judge(tmp_path, edit)
    code, out, err = run_cli("digits", "evaluate", real_folder, "--judge", judge, "--json", tmp_path / "s.json")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(judge / "model.safetensors") in err and repr(key) in err and message in err, err
    assert not (tmp_path / "s.json").exists()


def test_a_distance_that_overflows_is_refused_not_written(run_cli, real_folder, tmp_path):
    """Judge weights that would overflow the features give no inf distance in the JSON: one line naming the
    judge's weights (refused on load since their magnitude check, before any distance is computed)."""
    def overflow(tensors):
        tensors["model.body.6.1.weight"] *= 1e38

    judge = tampered_judge(tmp_path, overflow)
    code, out, err = run_cli("digits", "evaluate", real_folder, "--judge", judge, "--json", tmp_path / "s.json")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(judge / "model.safetensors") in err and "model.body.6.1.weight" in err and "magnitude" in err, err
    assert not (tmp_path / "s.json").exists()


def test_the_shipped_judge_passes_its_own_checks():
    judge = load_judge()
    assert judge.path.name == "model.safetensors" and np.isfinite(judge.mu).all()
