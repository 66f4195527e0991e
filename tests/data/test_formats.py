"""Every reader on small files of its format, made here, compared with what was written."""

from __future__ import annotations

import bz2
import gzip

import h5py
import numpy as np
import pytest
from scipy.io import savemat

from diffadapt.data import read_source
from diffadapt.data.formats.idx import read_idx
from tests.data.helpers import random_digits, write_course, write_png


def test_course_layout_reads_every_split_in_csv_order(tmp_path, rng):
    train = random_digits(rng, 12)
    val = random_digits(rng, 5)
    write_course(tmp_path / "mnistm", {"train": train, "val": val})
    splits = read_source(tmp_path / "mnistm")
    assert set(splits) == {"train", "val"}
    np.testing.assert_array_equal(splits["train"].images, train[0])
    np.testing.assert_array_equal(splits["val"].labels, val[1])
    assert splits["train"].domain == "mnistm"
    assert splits["train"].names[0] == "00000.png"


def test_course_layout_gray_usps(tmp_path, rng):
    images, labels = random_digits(rng, 6, channels=1)
    write_course(tmp_path / "usps", {"train": (images, labels)})
    digits = read_source(tmp_path / "usps")["train"]
    assert digits.images.shape == (6, 28, 28, 1) and digits.domain == "usps"
    np.testing.assert_array_equal(digits.images, images)


def _idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx(tmp_path, rng, gz):
    images, labels = random_digits(rng, 7, channels=1)
    for name, array in (("t10k-images-idx3-ubyte", images[:, :, :, 0]), ("t10k-labels-idx1-ubyte", labels)):
        data = _idx_bytes(array)
        if gz:
            (tmp_path / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (tmp_path / name).write_bytes(data)
    digits = read_source(tmp_path)["test"]
    np.testing.assert_array_equal(digits.images, images)
    np.testing.assert_array_equal(digits.labels, labels)


def test_mnistm_release(tmp_path, rng):
    images, labels = random_digits(rng, 5, side=32)
    for split in ("train", "test"):
        folder = tmp_path / f"mnist_m_{split}"
        folder.mkdir()
        lines = []
        for i, (image, label) in enumerate(zip(images, labels)):
            write_png(folder / f"{i:08d}.png", image)
            lines.append(f"{i:08d}.png {label}")
        (tmp_path / f"mnist_m_{split}_labels.txt").write_text("\n".join(lines) + "\n")
    splits = read_source(tmp_path)
    assert set(splits) == {"train", "test"}
    np.testing.assert_array_equal(splits["test"].images, images)
    assert splits["train"].domain == "mnistm" and splits["train"].size == (32, 32)


def test_usps_h5(tmp_path, rng):
    data = rng.random((9, 256))
    target = np.arange(9) % 10
    with h5py.File(tmp_path / "usps.h5", "w") as handle:
        for split in ("train", "test"):
            group = handle.create_group(split)
            group["data"] = data
            group["target"] = target
    splits = read_source(tmp_path / "usps.h5")
    assert splits["train"].images.shape == (9, 16, 16, 1)
    np.testing.assert_array_equal(splits["test"].images[:, :, :, 0].reshape(9, 256), np.round(data * 255).astype(np.uint8))
    np.testing.assert_array_equal(splits["train"].labels, target)


def test_usps_libsvm_bz2(tmp_path, rng):
    values = rng.uniform(-1, 1, size=(4, 256)).round(6)
    labels = np.array([1, 10, 3, 5])  # LIBSVM's USPS labels digit d as d + 1
    text = "\n".join(f"{l} " + " ".join(f"{i + 1}:{v}" for i, v in enumerate(row)) for l, row in zip(labels, values)) + "\n"
    (tmp_path / "usps.bz2").write_bytes(bz2.compress(text.encode()))
    (tmp_path / "usps.t.bz2").write_bytes(bz2.compress(text.encode()))
    splits = read_source(tmp_path)
    assert set(splits) == {"train", "test"}
    np.testing.assert_array_equal(splits["train"].labels, labels - 1)
    expected = np.round((values + 1) * 127.5).astype(np.uint8).reshape(4, 16, 16, 1)
    np.testing.assert_array_equal(splits["test"].images, expected)


def test_svhn_mat_label_ten_is_zero(tmp_path, rng):
    images = rng.integers(0, 256, size=(32, 32, 3, 6), dtype=np.uint8)
    labels = np.array([[10], [1], [2], [3], [9], [10]], dtype=np.uint8)
    savemat(tmp_path / "train_32x32.mat", {"X": images, "y": labels})
    savemat(tmp_path / "test_32x32.mat", {"X": images[..., :2], "y": labels[:2]})
    splits = read_source(tmp_path)
    assert set(splits) == {"train", "test"}
    digits = splits["train"]
    assert digits.domain != "" and digits.images.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(digits.labels, [0, 1, 2, 3, 9, 0])
    np.testing.assert_array_equal(digits.images[4], images[:, :, :, 4])
    assert read_source(tmp_path / "test_32x32.mat")["test"].images.shape == (2, 32, 32, 3)


def test_class_subfolders_with_and_without_splits(tmp_path, rng):
    images, labels = random_digits(rng, 10)
    for split in ("train", "val"):
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = tmp_path / "faces" / split / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            write_png(folder / f"{i}.png", image)
    splits = read_source(tmp_path / "faces")
    assert set(splits) == {"train", "val"}
    order = np.argsort(splits["val"].labels, kind="stable")
    np.testing.assert_array_equal(splits["val"].labels[order], np.sort(labels))
    flat = read_source(tmp_path / "faces" / "train")
    assert len(flat["train"]) == 10


@pytest.mark.parametrize("form", ["xy", "splits"])
def test_npz(tmp_path, rng, form):
    images, labels = random_digits(rng, 8, side=16, channels=1)
    if form == "xy":
        np.savez(tmp_path / "usps16.npz", x=images[:, :, :, 0], y=labels)
        expected_splits = {"train"}
    else:
        np.savez(tmp_path / "usps16.npz", x_train=images, y_train=labels, x_test=images[:3], y_test=labels[:3])
        expected_splits = {"train", "test"}
    splits = read_source(tmp_path / "usps16.npz")
    assert set(splits) == expected_splits
    np.testing.assert_array_equal(splits["train"].images, images)
    assert splits["train"].domain == "usps"


def test_unlabelled_folder(tmp_path, rng):
    images, _ = random_digits(rng, 3)
    for i, image in enumerate(images):
        write_png(tmp_path / f"{i:05d}.png", image)
    digits = read_source(tmp_path)["unlabelled"]
    assert (digits.labels == -1).all() and digits.names == ["00000.png", "00001.png", "00002.png"]


def test_idx_header_checked(tmp_path):
    (tmp_path / "x-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((2, 3, 3), np.uint8))[:-1])
    from diffadapt.errors import InputError

    with pytest.raises(InputError, match="header promises"):
        read_idx(tmp_path / "x-images-idx3-ubyte")
