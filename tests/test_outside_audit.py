"""Bad inputs an audit from outside found (2026-12-07): each got a traceback, a half-written output or a
memory blow-up before; each now gets a one-line error, exit 2 and nothing written."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from diffadapt.data import face_images
from diffadapt.data.formats import checks, svhn
from diffadapt.data.memory import convert_images
from diffadapt.errors import InputError
from diffadapt.io import atomic_dir, safe_torch_load
from tests.test_faults import assert_one_line_error as one_line_error


def png_folder(folder: Path, count: int, size: int = 16) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(folder / f"{index:02d}.png")
    return folder


def course_folder(root: Path, per_class: int) -> Path:
    """A course-layout folder (data/*.png and train.csv) with ``per_class`` images of each digit."""
    (root / "data").mkdir(parents=True)
    rows = ["image_name,label"]
    for index in range(10 * per_class):
        Image.fromarray(np.full((28, 28, 3), index, dtype=np.uint8)).save(root / "data" / f"{index:05d}.png")
        rows.append(f"{index:05d}.png,{index % 10}")
    (root / "train.csv").write_text("\n".join(rows) + "\n")
    return root


# --- outputs -------------------------------------------------------------------------------------------


def test_predict_refuses_an_output_without_a_file_name(run_cli, tmp_path):
    folder = png_folder(tmp_path / "images", 3)
    code, _, err = run_cli("adapt", "predict", folder, "", "--shipped", "usps")
    one_line_error(code, err, "expected a file name")


@pytest.mark.parametrize("saved", ["out.csv", "out.estimate.json", "."])
def test_predict_refuses_a_saved_run_over_its_own_outputs(run_cli, tmp_path, monkeypatch, saved):
    folder = png_folder(tmp_path / "images", 3)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code, _, err = run_cli("adapt", "predict", folder, "out.csv", "--shipped", "usps", "--adapt", "--save-adapted", saved)
    one_line_error(code, err, "overlap")
    assert list(work.iterdir()) == []  # checked before any work: no run folder, no csv


@pytest.mark.parametrize("out", [".", "", ".."])
def test_a_folder_output_may_not_be_the_current_folder(tmp_path, monkeypatch, out):
    work = tmp_path / "work"
    work.mkdir()
    (work / "kept.txt").write_text("mine")
    monkeypatch.chdir(work)
    with pytest.raises(InputError, match="current folder"):
        with atomic_dir(out, overwrite=True):
            pass
    assert sorted(p.name for p in work.iterdir()) == ["kept.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["work"]  # no temporary left beside it either


def test_a_failed_replace_puts_the_old_output_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst) == out and "tmp-part" in str(src) and not str(src).endswith("/x"):
            raise OSError("simulated failure")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="simulated"):
        with atomic_dir(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# --- settings files ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, fragment", [
    ('parts = ["adapt"]\n[adapt]\nseeds = [-1]\n', "adapt.seeds[0]: must be at least 0"),
    ('parts = ["adapt"]\n[adapt]\nseeds = [4294967296]\n', "adapt.seeds[0]: must be below"),
    ("parts = []\n", "parts: needs at least 1 entry"),
    ('[adapt]\nmethods = []\n', "adapt.methods: needs at least 1 entry"),
    ('[adapt]\ntargets = []\n', "adapt.targets: needs at least 1 entry"),
    ('[digits]\nscore_seeds = []\n', "digits.score_seeds: needs at least 1 entry"),
    ('[digits]\nscore_seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n', "digits.score_seeds: takes at most 10"),
])
def test_report_lists_are_checked_on_load(run_cli, tmp_path, text, fragment):
    config = tmp_path / "report.toml"
    config.write_text(text)
    code, _, err = run_cli("report", "--config", config, "--out", tmp_path / "report")
    one_line_error(code, err, "report.toml", fragment)
    assert not (tmp_path / "report").exists()


def test_digit_training_refuses_a_schedule_its_own_sampler_cannot_run(run_cli, tmp_path):
    code, _, err = run_cli("digits", "train", "--data", "mnist", "--out", tmp_path / "run", "--steps", "1", "--batch-size", "2",
                           "--timesteps", "5", "--no-progress")
    one_line_error(code, err, "timesteps 5", "steps must be in 1..5")
    assert not (tmp_path / "run").exists()


# --- small data sets -----------------------------------------------------------------------------------


def test_prepare_refuses_a_val_fraction_that_leaves_a_split_empty(run_cli, tmp_path):
    source = course_folder(tmp_path / "course", per_class=2)
    for fraction in ("0.2", "0.9"):
        code, _, err = run_cli("data", "prepare", source, "--out", tmp_path / "prepared", "--val-fraction", fraction, "--size", "8")
        one_line_error(code, err, f"--val-fraction {fraction}")
        assert not (tmp_path / "prepared").exists()


def test_converting_no_images_keeps_the_shape():
    empty = torch.zeros((0, 3, 28, 28), dtype=torch.uint8)
    assert convert_images(empty, channels=1, size=8).shape == (0, 1, 8, 8)


def test_adaptation_names_a_source_too_small_for_its_val_split(run_cli, tmp_path):
    source = course_folder(tmp_path / "course", per_class=2)
    code, _, err = run_cli("adapt", "train", "--source", source, "--target", "usps", "--method", "dann", "--out", tmp_path / "run")
    one_line_error(code, err, "too few labelled images")


# --- memory bombs --------------------------------------------------------------------------------------


def deflated_torch_file(path: Path, values: int) -> Path:
    """A torch file of a (1, 3, 8, 8) view into a storage of ``values`` zeros, its members deflated: small on
    disk, ``4 * values`` bytes once loaded."""
    raw = path.with_suffix(".raw")
    torch.save(torch.zeros(values)[:192].view(1, 3, 8, 8), raw)
    with zipfile.ZipFile(raw) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info.filename))
    raw.unlink()
    return path


def test_a_torch_file_is_refused_by_what_it_declares(tmp_path):
    bomb = deflated_torch_file(tmp_path / "noise.pt", 1 << 22)  # 16 MiB once loaded
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(InputError, match="would take 16 MiB"):
        safe_torch_load(bomb, "noise file", max_bytes=8 << 20)
    assert safe_torch_load(bomb, "noise file", max_bytes=32 << 20).shape == (1, 3, 8, 8)


def test_noise_is_copied_out_of_its_file_storage(tmp_path):
    from diffadapt.apps.faces.models import load_noise

    path = tmp_path / "noise.pt"
    torch.save(torch.randn(3 * 16 * 16 * 4)[: 3 * 16 * 16].view(3, 16, 16), path)
    noise = load_noise(path)
    assert noise.shape == (1, 3, 16, 16)
    assert noise.untyped_storage().nbytes() == noise.numel() * 4  # not the file's four times larger storage


def test_the_course_classifier_file_has_a_budget(tmp_path, run_cli):
    bomb = deflated_torch_file(tmp_path / "Classifier.pth", 1 << 22)
    folder = tmp_path / "generated"
    folder.mkdir()
    Image.fromarray(np.zeros((28, 28, 3), dtype=np.uint8)).save(folder / "0_001.png")
    code, _, err = run_cli("digits", "evaluate", folder, "--classifier", bomb, "--no-judge")
    one_line_error(code, err, "Classifier.pth", "more than a classifier file may")


def test_faces_are_budgeted_before_any_is_decoded(tmp_path, monkeypatch):
    archive = tmp_path / "faces.zip"
    pixel = tmp_path / "pixel.png"
    Image.fromarray(np.zeros((1, 1, 3), dtype=np.uint8)).save(pixel)
    with zipfile.ZipFile(archive, "w") as out:
        for index in range(20):
            out.write(pixel, f"{index:03d}.png")
    monkeypatch.setattr(face_images, "MAX_FACE_BYTES", 19 * 64 * 64 * 3)
    decoded = []
    monkeypatch.setattr(face_images, "_face", lambda *args: decoded.append(args) or np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(InputError, match="20 face images at 64x64"):
        face_images.read_face_images(archive, 64)
    assert decoded == []
    monkeypatch.setattr(face_images, "MAX_FACE_BYTES", 20 * 64 * 64 * 3)
    assert face_images.read_face_images(archive, 64).shape == (20, 64, 64, 3)


def test_svhn_mat_is_refused_by_its_declared_size(tmp_path, monkeypatch):
    path = tmp_path / "train_32x32.mat"
    savemat(path, {"X": np.zeros((32, 32, 3, 40)), "y": np.ones((40, 1))}, do_compression=True)
    monkeypatch.setattr(svhn, "MAX_MAT_BYTES", 32 * 32 * 3 * 40 * 8 - 1)  # float64 'X': one byte over
    with pytest.raises(InputError, match="'X' declares a 32x32x3x40 array"):
        svhn.read_svhn_mat(path)
    monkeypatch.setattr(svhn, "MAX_MAT_BYTES", 32 * 32 * 3 * 40 * 8)
    assert len(svhn.read_svhn_mat(path)) == 40


@pytest.mark.parametrize("high", [1.0, 255.0])
def test_float_pixels_convert_a_slice_at_a_time_as_in_one_go(monkeypatch, high):
    values = np.random.default_rng(0).uniform(0, high, (37, 5, 7, 3)).astype(np.float32)
    expected = np.round(np.clip(values, 0.0, high) * (255.0 / high if high == 1.0 else 1.0)).astype(np.uint8)
    monkeypatch.setattr(checks, "_CHUNK_VALUES", 5 * 7 * 3 * 4)  # 10 slices of 4 rows
    np.testing.assert_array_equal(checks.to_uint8(values, "x"), expected)
    bad = values.copy()
    bad[-1, 0, 0, 0] = np.nan  # in the last slice
    with pytest.raises(InputError, match="NaN"):
        checks.to_uint8(bad, "x")


def test_generated_folder_refuses_links_that_leave_it(run_cli, tmp_path):
    outside = tmp_path / "elsewhere.png"
    Image.fromarray(np.zeros((28, 28, 3), dtype=np.uint8)).save(outside)
    folder = tmp_path / "generated"
    folder.mkdir()
    Image.fromarray(np.zeros((28, 28, 3), dtype=np.uint8)).save(folder / "0_001.png")
    (folder / "1_001.png").symlink_to(outside)
    code, _, err = run_cli("digits", "evaluate", folder, "--no-judge")
    one_line_error(code, err, "1_001.png", "outside")


# --- a second audit: run folders, the course scripts, the Python API ---------------------------------------

TINY_TRAIN = ("--data", "mnist", "--batch-size", "4", "--base-channels", "8", "--channel-mults", "1", "--res-blocks", "1",
              "--attention-levels", "", "--timesteps", "10", "--warmup-steps", "1", "--no-progress", "--recipe", "cpu")


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def one_step_run(run_cli, tmp_path):
    """A 1-step digit run whose config asks for 2 steps, so that --resume trains one more."""
    import json

    run = tmp_path / "run"
    code, _, err = run_cli("digits", "train", "--out", run, "--steps", "1", *TINY_TRAIN)
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    config["train"]["steps"] = config["total_steps"] = 2
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.mark.parametrize("edit, fragment", [
    (lambda s: next(iter(s["optimizer"]["state"].values()))["exp_avg_sq"].fill_(-1.0), "exp_avg_sq is negative"),
    (lambda s: next(iter(s["optimizer"]["state"].values())).__setitem__("step", torch.tensor(float("nan"))), "not finite"),
    (lambda s: s["optimizer"]["param_groups"][0].__setitem__("betas", (5.0, -1.0)), "out of range"),
    (lambda s: next(iter(s["model"].values())).mul_(1e30), "training diverged"),
])
def test_resume_from_an_edited_state_keeps_the_last_checkpoint(run_cli, one_step_run, edit, fragment):
    state = torch.load(one_step_run / "state.pt", weights_only=True)
    edit(state)
    torch.save(state, one_step_run / "state.pt")
    before = folder_bytes(one_step_run)
    code, _, err = run_cli("digits", "train", "--out", one_step_run, "--resume", "--no-progress")
    one_line_error(code, err, fragment)
    assert folder_bytes(one_step_run) == before


def test_resume_on_data_of_other_channels_is_refused(run_cli, one_step_run):
    import json

    config = json.loads((one_step_run / "config.json").read_text())
    config["data"]["source"] = "mnistm"  # 3 channels; the run's network takes 1
    (one_step_run / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli("digits", "train", "--out", one_step_run, "--resume", "--no-progress")
    one_line_error(code, err, "3 channels do not fit")


def shipped_copy(tmp_path: Path, name: str) -> Path:
    import shutil

    from diffadapt.io import CONFIG_FILE

    source = Path(__file__).resolve().parents[1] / "src" / "diffadapt" / "assets" / name
    copy = tmp_path / name
    shutil.copytree(source, copy)
    assert (copy / CONFIG_FILE).is_file()
    return copy


def test_a_json_integer_beyond_any_float_is_an_error(run_cli, tmp_path):
    run = shipped_copy(tmp_path, "adapt_usps")
    text = (run / "config.json").read_text()
    (run / "config.json").write_text(text.replace('"lr": ', '"lr": 1' + "0" * 400 + ", \"_was\": ", 1))
    folder = png_folder(tmp_path / "images", 3)
    code, _, err = run_cli("adapt", "predict", folder, tmp_path / "out.csv", "--ckpt", run)
    one_line_error(code, err, "config.json", "finite number")
    assert not (tmp_path / "out.csv").exists()


def test_a_lone_surrogate_in_a_config_is_an_error(tmp_path):
    from diffadapt.io import read_json

    path = tmp_path / "config.json"
    path.write_text('{"domain": "\\ud800"}')
    with pytest.raises(InputError, match="lone surrogate"):
        read_json(path)
    path.write_text('{"domain": "\\ud83d\\ude00"}')  # a pair is one character
    assert read_json(path) == {"domain": "\U0001f600"}


@pytest.mark.parametrize("edit, fragment", [
    (lambda config: config.__setitem__("floor_halves", -5.0), "floor_halves >= 0"),
    (lambda config: config["floors_by_size"].__setitem__("20", -1.0), "floors_by_size of numbers >= 0"),
])
def test_judge_floors_are_never_negative(run_cli, tmp_path, edit, fragment):
    import json

    judge = shipped_copy(tmp_path, "judge_mnistm")
    config = json.loads((judge / "config.json").read_text())
    config.setdefault("floors_by_size", {})
    edit(config)
    (judge / "config.json").write_text(json.dumps(config))
    folder = tmp_path / "generated"
    folder.mkdir()
    Image.fromarray(np.zeros((28, 28, 3), dtype=np.uint8)).save(folder / "0_001.png")
    code, _, err = run_cli("digits", "evaluate", folder, "--judge", judge)
    one_line_error(code, err, fragment)


def test_judge_weights_of_absurd_size_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    from diffadapt.evaluate.judge import JUDGE_WEIGHTS, load_judge

    judge = shipped_copy(tmp_path, "judge_mnistm")
    tensors = load_file(judge / JUDGE_WEIGHTS)
    name = next(k for k in tensors if k.startswith("model.") and k.endswith("weight"))
    tensors[name] = tensors[name] * 1e18
    save_file(tensors, judge / JUDGE_WEIGHTS)
    with pytest.raises(InputError, match="magnitude"):
        load_judge(judge)


def test_calibrate_writes_no_seed_when_one_is_bad(run_cli, tmp_path):
    import json
    import shutil

    good = shipped_copy(tmp_path, "adapt_usps")
    run = tmp_path / "multi"
    shutil.copytree(good, run / "seed0")
    shutil.copytree(good, run / "seed1")
    config = json.loads((run / "seed1" / "config.json").read_text())
    config["config"]["network"] = "resnet"
    (run / "seed1" / "config.json").write_text(json.dumps(config))
    before = (run / "seed0" / "config.json").read_bytes()
    code, _, err = run_cli("adapt", "calibrate", run, "--source", "mnistm")
    one_line_error(code, err, "seed1", "resnet")
    assert (run / "seed0" / "config.json").read_bytes() == before


def test_a_checkpoint_may_not_declare_another_size_than_its_data(tmp_path):
    import json

    from diffadapt.diffusion.models import load_model

    run = shipped_copy(tmp_path, "digits_default")
    config = json.loads((run / "config.json").read_text())
    config["model"]["image_size"] = 1024
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match="image_size 1024 differs from data.size 28"):
        load_model(run)


def test_course_script_paths_may_start_with_a_dash(tmp_path, monkeypatch):
    from tests.cli.test_scripts import run_script

    folder = png_folder(tmp_path / "-usps imgs", 3)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = run_script("hw2_3.sh", folder, "-o.csv")  # a csv name the script used to pass on as an option
    assert result.returncode == 0, result.stderr[-2000:]
    assert (work / "-o.csv").read_text().splitlines()[0] == "image_name,label"


@pytest.mark.parametrize("call, fragment", [
    (lambda d: d.load_digits(ckpt=5), "ckpt must be a path"),
    (lambda d: d.train_digits(out=None), "out must be a path"),
    (lambda d: d.train_adaptation("mnistm", np.zeros((4, 28, 28), np.uint8), "source", "x"), "target must be a source spec"),
    (lambda d: d.train_adaptation({"train": 5}, "usps", "source", "x"), "source must be a source spec"),
    (lambda d: d.load_adaptation(run=5), "run must be a path"),
    (lambda d: d.predict_to_csv(None, "o.csv", shipped="usps"), "image_dir must be a path"),
    (lambda d: d.load_faces(None), "unet must be a path"),
    (lambda d: d.predict_labels("a run", np.zeros((2, 28, 28), np.uint8)), "run must be a loaded adaptation run"),
    (lambda d: d.tsne("a run", "out"), "run must be a loaded adaptation run"),
    (lambda d: d.tsne(d.load_adaptation(shipped="usps"), "out", per_domain=10.5), "per_domain must be a whole number"),
    (lambda d: d.tsne(d.load_adaptation(shipped="usps"), "out", domains=("mnistm",)), "(source, target) pair"),
    (lambda d: d.predict_labels(d.load_adaptation(shipped="usps"), np.zeros((2, 28, 28), np.uint8), progress="yes"), "progress must be"),
    (lambda d: d.digits(np.zeros((2, 0, 0), np.uint8)), "images must be"),
])
def test_api_arguments_of_the_wrong_kind_are_input_errors(call, fragment):
    import diffadapt

    with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        call(diffadapt)


@pytest.mark.parametrize("edit, fragment", [
    (lambda d: d.__setitem__("format", 3), "format must be 1 or 2"),
    (lambda d: d.__setitem__("format", "2"), "format must be 1 or 2"),
    (lambda d: d.__setitem__("format", True), "format must be 1 or 2"),
    (lambda d: d["calibration"].__setitem__("threshold", 5.0), "calibration.threshold must be a number in 0..1"),
    (lambda d: d["calibration"].__setitem__("threshold", -5.0), "calibration.threshold must be a number in 0..1"),
    (lambda d: d["calibration"].__setitem__("images", 10**100), "calibration.images must be a whole number"),
])
def test_adaptation_run_records_out_of_range_are_refused(tmp_path, edit, fragment):
    import json

    from diffadapt.apps.adaptation.predict import run_calibration
    from diffadapt.apps.adaptation.runs import load_run

    run = shipped_copy(tmp_path, "adapt_usps")
    document = json.loads((run / "config.json").read_text())
    edit(document)
    (run / "config.json").write_text(json.dumps(document))
    with pytest.raises(InputError, match=fragment):
        run_calibration(load_run(run))


def test_control_characters_in_an_error_are_shown_escaped(run_cli):
    code, _, err = run_cli("data", "info", "no\x00such\x1b[31m")
    message = one_line_error(code, err, "no\\x00such\\x1b[31m")
    assert not any(ord(c) < 32 or ord(c) == 127 for c in message)
    assert str(InputError("a\tb", "x\ny")) == "x y: a\\x09b"


# --- session 28: the third audit (reproducibility and new bad inputs) ---------------------------------------


def test_resume_refuses_settings_it_would_ignore(run_cli, one_step_run, tmp_path):
    # `--resume --lr 0.5 --seed 7` exited 0 and trained with the saved lr and seed, without a word.
    before = sorted(p.name for p in one_step_run.iterdir())
    code, _, err = run_cli("digits", "train", "--out", one_step_run, "--resume", "--lr", "0.5", "--seed", "7", "--no-progress")
    assert code == 2 and "drop the settings given beside it (lr, seed)" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in one_step_run.iterdir()) == before
    faces = tmp_path / "faces"
    faces.mkdir()
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(faces / f"{i}.png")
    code, _, err = run_cli("faces", "train", faces, "--out", tmp_path / "frun", "--resume", "--steps", "4", "--size", "16")
    assert code == 2 and "(size, steps)" in err, err
    assert not (tmp_path / "frun").exists()


def test_config_errors_name_the_option_typed(run_cli, tmp_path):
    code, _, err = run_cli("digits", "train", "--out", tmp_path / "run", "--timesteps", "0", "--steps", "1", "--no-progress")
    assert code == 2 and err.startswith("error: --timesteps: must be at least 1"), err
    assert not (tmp_path / "run").exists()


def test_paths_the_system_refuses_are_one_line_errors(run_cli, tmp_path):
    long_name = tmp_path / ("a" * 300)
    for args in (("data", "info", long_name), ("digits", "generate", long_name, "--per-class", "1", "--steps", "2"),
                 ("data", "prepare", "mnist", "--out", long_name)):
        code, _, err = run_cli(*args)
        assert code == 2 and "error: " in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (args, err)


def test_an_image_folder_refuses_entries_that_are_not_files(run_cli, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(folder / "ok.png")
    (folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    code, _, err = run_cli("adapt", "predict", folder, tmp_path / "p.csv", "--shipped", "usps", "--no-progress")
    assert code == 2 and "gone.png: is a device, pipe, socket or broken link" in err, err  # was exit 0 with one row
    assert not (tmp_path / "p.csv").exists()
    (folder / "gone.png").unlink()
    (folder / "sub.png").mkdir()
    code, _, err = run_cli("data", "info", folder)
    assert code == 2 and "sub.png: is a folder" in err, err


def test_an_output_may_not_overwrite_an_input(run_cli, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((28, 28, 3), 60 * i, np.uint8)).save(folder / f"{i}.png")
    original = (folder / "0.png").read_bytes()
    code, _, err = run_cli("adapt", "predict", folder, folder / "0.png", "--shipped", "usps", "--no-progress")
    assert code == 2 and "would overwrite or change the input" in err, err
    code, _, err = run_cli("data", "preview", folder, "--out", folder / "0.png")
    assert code == 2 and "--out would overwrite or change the input" in err, err
    code, _, err = run_cli("data", "prepare", folder, "--out", folder, "--overwrite")
    assert code == 2 and "--out would overwrite or change the input" in err, err
    assert (folder / "0.png").read_bytes() == original and sorted(p.name for p in folder.iterdir()) == ["0.png", "1.png", "2.png"]
    code, out, err = run_cli("adapt", "predict", folder, folder / "labels.csv", "--shipped", "usps", "--no-progress")
    assert code == 0 and (folder / "labels.csv").is_file(), err  # a csv beside the images is not an input


def test_faces_readers_refuse_links_out_of_their_folder(run_cli, tmp_path):
    from diffadapt.apps.faces.models import ground_truth_paths, load_noise_dir

    outside = tmp_path / "outside"
    outside.mkdir()
    torch.save(torch.randn(1, 3, 8, 8), outside / "secret.pt")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(outside / "secret.png")
    noise, gt = tmp_path / "noise", tmp_path / "gt"
    noise.mkdir()
    gt.mkdir()
    (noise / "00.pt").symlink_to(outside / "secret.pt")
    with pytest.raises(InputError, match="link to a file outside"):
        load_noise_dir(noise)
    (gt / "00.png").symlink_to(outside / "secret.png")
    with pytest.raises(InputError, match="link to a file outside"):
        ground_truth_paths(gt, ["00"])
    with pytest.raises(InputError, match="ground-truth image for a noise file is missing"):
        ground_truth_paths(gt, ["01"])


def test_weights_files_do_not_depend_on_the_process(tmp_path):
    # safetensors writes __metadata__ from a hash map whose order changes between processes: same-seed runs
    # gave model.safetensors files differing in bytes. The header is written with sorted keys, same length.
    from safetensors.torch import save

    from diffadapt.io import _sorted_metadata, load_weights

    tensors = {"w": torch.arange(6.0).view(2, 3)}
    blob = save(tensors, metadata={"step": "3", "kind": "digits"})
    fixed = _sorted_metadata(blob)
    length = int.from_bytes(fixed[:8], "little")
    assert len(fixed) == len(blob) and fixed[8:8 + length].index(b'"kind"') < fixed[8:8 + length].index(b'"step"')
    (tmp_path / "w.safetensors").write_bytes(fixed)
    loaded, metadata = load_weights(tmp_path / "w.safetensors")
    assert metadata == {"kind": "digits", "step": "3"} and torch.equal(loaded["w"], tensors["w"])


def test_resume_state_does_not_hold_the_temporary_name(tmp_path):
    # torch.save to a path names the archive's inner folder after the file: the atomic temporary's random name.
    from diffadapt.diffusion.checkpoint import STATE_FILE, save_checkpoint

    save_checkpoint(tmp_path, {"kind": "digits", "step": 1}, {"w": torch.zeros(2)}, {"step": 1})
    assert {name.split("/")[0] for name in zipfile.ZipFile(tmp_path / STATE_FILE).namelist()} == {"archive"}


def test_faces_train_help_shows_the_defaults_a_face_run_uses():
    # The help said batch size 256 and 20 epochs (TrainConfig's); a face run takes 64 and 50.
    from diffadapt.apps.faces.training import FACE_TRAIN_DEFAULTS
    from diffadapt.cli import build_parser

    parser = build_parser()
    faces = next(a for a in parser._actions if a.dest == "family").choices["faces"]
    train = next(a for a in faces._actions if getattr(a, "choices", None) and "train" in a.choices).choices["train"]
    helps = {a.dest: a.help for a in train._actions}
    assert "(default: 64)" in helps["batch_size"] and "(default: 50)" in helps["epochs"]
    assert set(FACE_TRAIN_DEFAULTS) - {"p_uncond"} <= set(helps)


def test_a_digit_run_records_what_auto_resolved_to(one_step_run):
    # precision "auto" and channels_last "auto" alone do not say how to get these exact weights again.
    import json

    runtime = json.loads((one_step_run / "config.json").read_text())["runtime"]
    assert runtime["device"] == "cpu" and runtime["precision"] in ("bf16", "fp32") and runtime["channels_last"] is False
    assert runtime["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and runtime["torch"] == torch.__version__


def test_stopping_and_resuming_writes_the_metrics_of_one_run(run_cli, tmp_path):
    # metrics.csv gained a row at the stop and the next row averaged fewer steps (0.99582 against 1.00197).
    args = ["--steps", "6", "--log-every", "4", "--no-progress", *TINY_TRAIN]
    assert run_cli("digits", "train", "--out", tmp_path / "one", *args)[0] == 0
    assert run_cli("digits", "train", "--out", tmp_path / "two", *args, "--stop-after", "3")[0] == 0
    code, _, err = run_cli("digits", "train", "--out", tmp_path / "two", "--resume", "--no-progress")
    assert code == 0, err

    def rows(run):
        lines = (run / "metrics.csv").read_text().splitlines()
        header = lines[0].split(",")
        return [{k: v for k, v in zip(header, line.split(",")) if k != "images_per_s"} for line in lines[1:]]

    assert rows(tmp_path / "two") == rows(tmp_path / "one") and [r["step"] for r in rows(tmp_path / "one")] == ["4", "6"]
    assert (tmp_path / "two" / "model.safetensors").read_bytes() == (tmp_path / "one" / "model.safetensors").read_bytes()


def test_an_edited_log_window_is_refused_on_resume(run_cli, tmp_path):
    out = tmp_path / "run"
    assert run_cli("digits", "train", "--out", out, "--steps", "6", "--log-every", "4", "--stop-after", "3", "--no-progress", *TINY_TRAIN)[0] == 0
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["log_window"]["loss_count"] == 3 and state["log_window"]["loss_sum"] > 0
    state["log_window"] = {"loss_sum": float("nan"), "loss_count": 3}
    torch.save(state, out / "state.pt")
    code, _, err = run_cli("digits", "train", "--out", out, "--resume", "--no-progress")
    assert code == 2 and "log_window" in err and len(err.strip().splitlines()) == 1, err


def test_a_folder_filled_while_a_command_ran_is_not_replaced(tmp_path):
    # atomic_dir checked the output only at the start: a folder made meanwhile (a second command on the same
    # path) was replaced at the end without --overwrite, and its files were lost.
    out = tmp_path / "out"
    with pytest.raises(InputError, match="was filled by something else while this command ran"):
        with atomic_dir(out) as tmp:
            (tmp / "mine.txt").write_text("mine")
            out.mkdir()
            (out / "precious.txt").write_text("precious")
    assert sorted(p.name for p in out.iterdir()) == ["precious.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with atomic_dir(out, overwrite=True) as tmp:  # asked for: replaced
        (tmp / "mine.txt").write_text("mine")
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]


def test_overwrite_never_deletes_what_the_command_reads(run_cli, tmp_path):
    # `report --config cf/r.toml --out cf --overwrite` deleted the config; `digits generate gp --ckpt gp/m
    # --overwrite` the checkpoint.
    folder = tmp_path / "cf"
    folder.mkdir()
    (folder / "r.toml").write_text('parts = ["data"]\n')
    code, _, err = run_cli("report", "--config", folder / "r.toml", "--out", folder, "--overwrite")
    assert code == 2 and "--out would overwrite or change the input" in err, err
    assert (folder / "r.toml").is_file()
    code, _, err = run_cli("digits", "export", tmp_path / "gp" / "m")
    assert code == 0, err
    code, _, err = run_cli("digits", "generate", tmp_path / "gp", "--ckpt", tmp_path / "gp" / "m", "--overwrite", "--per-class", "1", "--steps", "2")
    assert code == 2 and "the output folder would overwrite or change the input" in err, err
    code, _, err = run_cli("digits", "export", tmp_path / "gp", "--ckpt", tmp_path / "gp" / "m", "--overwrite")
    assert code == 2 and "would overwrite or change the input" in err, err
    assert (tmp_path / "gp" / "m" / "model_index.json").is_file()
    noise = tmp_path / "noise"
    noise.mkdir()
    torch.save(torch.randn(1, 3, 64, 64), noise / "00.pt")
    code, _, err = run_cli("faces", "generate", noise, noise, "--unet", tmp_path / "missing.pt", "--overwrite")
    assert code == 2 and "would overwrite or change the input" in err, err
    assert (noise / "00.pt").is_file()


def test_a_report_names_a_missing_domain_before_any_part_runs(run_cli, tmp_path):
    # a bad adapt.source / targets / data_sources failed only when its part started, after the parts before it.
    config = tmp_path / "r.toml"
    config.write_text('parts = ["digits", "adapt"]\n[adapt]\ntargets = ["usps", "nowhere.npz"]\n')
    code, out, err = run_cli("report", "--config", config, "--out", tmp_path / "out")
    assert code == 2 and err.startswith("error: adapt.targets: nowhere.npz: no such file or folder"), err
    assert "stage" not in out and not (tmp_path / "out").exists()


def test_an_output_may_still_be_a_new_folder_inside_a_checkpoint(run_cli, tmp_path):
    code, _, err = run_cli("digits", "export", tmp_path / "m")
    assert code == 0, err
    code, _, err = run_cli("digits", "generate", tmp_path / "m" / "samples", "--ckpt", tmp_path / "m", "--per-class", "1", "--steps", "2")
    assert code == 0 and len(list((tmp_path / "m" / "samples").glob("*.png"))) == 10, err


def test_a_report_names_its_device_key_and_noise_names_must_be_utf8(run_cli, tmp_path):
    from diffadapt.apps.faces.models import load_noise_dir

    config = tmp_path / "r.toml"
    config.write_text('device = "tpu"\nparts = ["data"]\n')
    code, _, err = run_cli("report", "--config", config, "--out", tmp_path / "out")
    assert code == 2 and err.startswith("error: device: unknown device 'tpu'"), err
    noise = tmp_path / "noise"
    noise.mkdir()
    with open(os.fsencode(noise) + b"/\xff.pt", "wb") as handle:
        torch.save(torch.randn(1, 3, 8, 8), handle)
    with pytest.raises(InputError, match="not valid UTF-8"):
        load_noise_dir(noise)


def test_diffusers_config_errors_name_the_files_keys(run_cli, tmp_path):
    import json

    assert run_cli("digits", "export", tmp_path / "m")[0] == 0
    config = tmp_path / "m" / "unet" / "config.json"
    document = json.loads(config.read_text())
    document["sample_size"] = 100_000  # said "image_size: must be at most 1024", a key the file does not have
    config.write_text(json.dumps(document))
    code, _, err = run_cli("digits", "generate", tmp_path / "out", "--ckpt", tmp_path / "m", "--per-class", "1", "--steps", "2")
    assert code == 2 and "sample_size (our image_size): must be at most 1024" in err, err


def test_a_table_names_a_damaged_seed_instead_of_dropping_it(run_cli, tmp_path):
    # `adapt table` printed "0.100 (1 seed)" with exit 0 when seed1 was a file or had lost its config.json.
    from diffadapt.apps.adaptation.runs import run_folders

    run = tmp_path / "run"
    (run / "seed0").mkdir(parents=True)
    (run / "seed0" / "config.json").write_text("{}")
    (run / "seed1").write_text("x")
    with pytest.raises(InputError, match="seed1: is not a finished seed folder"):
        run_folders(run)
    (run / "seed1").unlink()
    (run / "seed1").mkdir()
    with pytest.raises(InputError, match="seed1: is not a finished seed folder"):
        run_folders(run)
    (run / "seed1" / "config.json").write_text("{}")
    (run / "seedling").mkdir()  # not a seed's name: not part of the run
    assert [p.name for p in run_folders(run)] == ["seed0", "seed1"]


def test_judge_training_needs_one_batch_and_libsvm_lines_are_bounded(run_cli, tmp_path):
    import bz2

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "s2.npz", x_train=rng.integers(0, 255, (40, 8, 8), dtype=np.uint8), y_train=np.arange(40) % 10,
             x_test=rng.integers(0, 255, (200, 8, 8), dtype=np.uint8), y_test=np.arange(200) % 10)
    code, _, err = run_cli("digits", "train-judge", "--data", tmp_path / "s2.npz", "--out", tmp_path / "J", "--epochs", "1")
    assert code == 2 and "train split needs at least one batch" in err and not (tmp_path / "J").exists(), err  # was a traceback
    packer = bz2.BZ2Compressor(9)
    (tmp_path / "usps.bz2").write_bytes(b"".join(packer.compress(b"\n" * (1 << 20)) for _ in range(3)) + packer.flush())
    code, _, err = run_cli("data", "info", tmp_path / "usps.bz2")
    assert code == 2 and "more than 2,000,000 lines" in err, err


def test_a_figure_is_written_only_under_a_png_name(run_cli, tmp_path):
    # `digits grid g.jpg` wrote PNG bytes under a .jpg name, `x.PNG/` a file where a folder was meant, after sampling.
    for name in (f"{tmp_path}/g.jpg", f"{tmp_path}/x.png/", "-"):
        code, _, err = run_cli("digits", "grid", name, "--steps", "2")
        assert code == 2 and "its name must end in .png" in err, (name, err)
    code, _, err = run_cli("data", "preview", "mnist", "--out", tmp_path / "p.gif")
    assert code == 2 and "--out is a PNG file" in err, err
    assert list(tmp_path.iterdir()) == []
