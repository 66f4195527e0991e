"""Each kind of bad input: one clear line naming the file (and row), exit code 2, nothing written."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from tests.data.helpers import random_digits, write_course, write_png


@pytest.fixture
def course_root(tmp_path, rng):
    root = tmp_path / "mnistm"
    write_course(root, {"train": random_digits(rng, 6), "val": random_digits(rng, 3)})
    return root


def assert_clean_error(run_cli, tmp_path, source, *expected_fragments):
    out = tmp_path / "prepared"
    code, stdout, stderr = run_cli("data", "prepare", source, "--out", out)
    assert code == 2
    message = stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    for fragment in expected_fragments:
        assert fragment in message, message
    assert not out.exists(), "a failed prepare must leave no output"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name], "temporary output left behind"
    return message


def test_missing_csv(run_cli, tmp_path, course_root):
    (course_root / "train.csv").unlink()
    (course_root / "val.csv").unlink()
    assert_clean_error(run_cli, tmp_path, course_root, "train.csv or val.csv")


def test_csv_names_missing_image(run_cli, tmp_path, course_root):
    (course_root / "data" / "00002.png").unlink()
    assert_clean_error(run_cli, tmp_path, course_root, "train.csv, row 4", "00002.png")


def test_missing_source(run_cli, tmp_path):
    assert_clean_error(run_cli, tmp_path, tmp_path / "nope", "nope", "no such file")


def test_corrupt_png(run_cli, tmp_path, course_root):
    (course_root / "data" / "00001.png").write_bytes(b"not a png at all")
    assert_clean_error(run_cli, tmp_path, course_root, "00001.png", "corrupt")


def test_truncated_png(run_cli, tmp_path, course_root):
    path = course_root / "data" / "00003.png"
    path.write_bytes(path.read_bytes()[:60])
    assert_clean_error(run_cli, tmp_path, course_root, "00003.png")


def test_label_out_of_range(run_cli, tmp_path, course_root):
    text = (course_root / "val.csv").read_text().splitlines()
    text[2] = text[2].split(",")[0] + ",12"
    (course_root / "val.csv").write_text("\n".join(text) + "\n")
    assert_clean_error(run_cli, tmp_path, course_root, "val.csv, row 3", "label 12 is outside 0..9")


def test_label_not_a_number(run_cli, tmp_path, course_root):
    text = (course_root / "train.csv").read_text().replace("00000.png,0", "00000.png,zero")
    (course_root / "train.csv").write_text(text)
    assert_clean_error(run_cli, tmp_path, course_root, "train.csv, row 2", "'zero'")


def test_mixed_image_sizes(run_cli, tmp_path, course_root, rng):
    write_png(course_root / "data" / "00004.png", random_digits(rng, 1, side=32)[0][0])
    assert_clean_error(run_cli, tmp_path, course_root, "00004.png", "mixed image sizes")


def test_empty_folder(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clean_error(run_cli, tmp_path, tmp_path / "empty", "empty")


def test_mat_without_expected_arrays(run_cli, tmp_path):
    savemat(tmp_path / "train_32x32.mat", {"images": np.zeros((2, 2))})
    assert_clean_error(run_cli, tmp_path, tmp_path / "train_32x32.mat", "train_32x32.mat", "'X' and 'y'")


def test_corrupt_mat(run_cli, tmp_path):
    (tmp_path / "test_32x32.mat").write_bytes(b"\x00" * 300)
    assert_clean_error(run_cli, tmp_path, tmp_path / "test_32x32.mat", "test_32x32.mat")


def test_npz_without_arrays(run_cli, tmp_path):
    np.savez(tmp_path / "digits.npz", a=np.zeros(3))
    assert_clean_error(run_cli, tmp_path, tmp_path / "digits.npz", "digits.npz", "'x' and 'y'")


def test_npz_wrong_shape(run_cli, tmp_path):
    np.savez(tmp_path / "digits.npz", x=np.zeros((4, 5), np.uint8), y=np.zeros(4))
    assert_clean_error(run_cli, tmp_path, tmp_path / "digits.npz", "digits.npz", "shape")


def test_prepare_refuses_non_empty_output(run_cli, tmp_path, course_root):
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, stderr = run_cli("data", "prepare", course_root, "--out", out)
    assert code == 2 and "not empty" in stderr
    assert (out / "keep.txt").read_text() == "mine"


def test_info_error_exit_code(run_cli, tmp_path):
    code, _, stderr = run_cli("data", "info", tmp_path / "missing")
    assert code == 2 and "missing" in stderr
