"""``data prepare`` and ``data info``: the course layout round-trips exactly."""

from __future__ import annotations

import numpy as np

from diffadapt.data import read_source
from diffadapt.data.prepare import with_val_split, write_course_layout
from tests.conftest import shared_file


def assert_same_splits(written, read_back):
    assert set(written) == set(read_back)
    for split, digits in written.items():
        np.testing.assert_array_equal(read_back[split].images, digits.images, err_msg=split)
        np.testing.assert_array_equal(read_back[split].labels, digits.labels, err_msg=split)
        assert read_back[split].domain == digits.domain


def test_prepare_embedded_roundtrip(run_cli, tmp_path):
    code, stdout, _ = run_cli("data", "prepare", "usps", "--out", tmp_path / "usps")
    assert code == 0 and "train" in stdout
    assert_same_splits(read_source("usps"), read_source(tmp_path / "usps"))


def test_val_split_carved_from_train_only(rng):
    splits = read_source("mnist")
    whole = {"train": splits["train"]}
    carved = with_val_split(whole, 0.25, seed=3)
    assert len(carved["train"]) + len(carved["val"]) == len(splits["train"])
    assert (carved["val"].class_counts() == 100).all()


def test_info_prints_counts(run_cli, tmp_path):
    code, stdout, _ = run_cli("data", "info", "svhn")
    assert code == 0
    assert "train" in stdout and "4800" in stdout and "28x28" in stdout


def roundtrip_real(tmp_path, name, limit=None):
    source = read_source(shared_file(name))
    if limit:  # the whole file is read; a part of it is written and read back (PNG encoding is the slow part)
        source = {split: digits.subset(np.arange(min(limit, len(digits)))) for split, digits in source.items()}
    write_course_layout(source, tmp_path / "course", progress=False)
    read_back = read_source(tmp_path / "course", progress=False)
    assert_same_splits(source, read_back)
    return source


def test_real_usps_roundtrip(tmp_path, run_cli):
    source = roundtrip_real(tmp_path, "usps16_train.npz")
    assert len(source["train"]) == 7291
    code, stdout, _ = run_cli("data", "info", tmp_path / "course")
    assert code == 0 and "7291" in stdout and "1194" in stdout and "16x16" in stdout


def test_real_mnist_idx_roundtrip(tmp_path):
    source = roundtrip_real(tmp_path, "mnist")
    assert len(source["test"]) == 10000 and source["test"].class_counts().sum() == 10000


def test_real_mnistm_roundtrip(tmp_path, run_cli):
    assert {k: len(v) for k, v in read_source(shared_file("mnistm28.npz")).items()} == {"train": 59001, "test": 9001}
    source = roundtrip_real(tmp_path, "mnistm28.npz", limit=3000)
    assert {k: len(v) for k, v in source.items()} == {"train": 3000, "test": 3000}
    code, stdout, _ = run_cli("data", "info", tmp_path / "course")
    assert code == 0 and "3000" in stdout and "mnistm" in stdout
