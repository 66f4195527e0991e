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
    text = "\n".join(f"{label} " + " ".join(f"{i + 1}:{v}" for i, v in enumerate(row)) for label, row in zip(labels, values)) + "\n"
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


# --- the value and path rules the readers document ---------------------------------------------------------


@pytest.mark.parametrize(("images", "expected"), [
    (np.array([0.0, 0.5, 1.0]), [0, 128, 255]),  # floats in [0, 1] are scaled
    (np.array([0.0, 127.6, 255.0]), [0, 128, 255]),  # floats in [0, 255] are rounded
    (np.array([0, 200, 255], np.int64), [0, 200, 255]),  # wide integers in 0..255 as they are
    (np.array([False, True, True]), [0, 255, 255]),  # booleans as black and white
])
def test_npz_pixel_rule(tmp_path, images, expected):
    np.savez(tmp_path / "d.npz", x=np.broadcast_to(images[:, None, None], (3, 2, 2)).copy(), y=np.array([[1], [2], [3]]))
    digits = read_source(tmp_path / "d.npz")["train"]
    np.testing.assert_array_equal(digits.images[:, 0, 0, 0], expected)
    np.testing.assert_array_equal(digits.labels, [1, 2, 3])


def test_png_modes(tmp_path):
    from PIL import Image

    from diffadapt.data.imageio import read_image

    gray = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(gray).convert("LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png")[:, :, 0], gray)  # gray + alpha stays gray
    Image.fromarray(gray > 100).save(tmp_path / "bw.png")
    assert set(np.unique(read_image(tmp_path / "bw.png"))) == {0, 255}
    wide = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(">u2")
    Image.frombytes("I;16B", (8, 8), wide.tobytes()).save(tmp_path / "big_endian.tif")
    np.testing.assert_array_equal(read_image(tmp_path / "big_endian.tif")[:, :, 0], np.round(wide.astype(float) / 257))


def test_idx_gzip_recognised_without_suffix(tmp_path, rng):
    images, labels = random_digits(rng, 3, channels=1)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(gzip.compress(_idx_bytes(images[:, :, :, 0])))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(labels))
    np.testing.assert_array_equal(read_source(tmp_path)["test"].images, images)


def test_course_subfolder_inside_data(tmp_path, rng):
    images, _ = random_digits(rng, 2)
    (tmp_path / "svhn" / "data" / "sub").mkdir(parents=True)
    for i, image in enumerate(images):
        write_png(tmp_path / "svhn" / "data" / "sub" / f"{i}.png", image)
    (tmp_path / "svhn" / "train.csv").write_text("image_name,label\nsub/0.png,0\n./sub/../sub/1.png,1\n")
    np.testing.assert_array_equal(read_source(tmp_path / "svhn")["train"].images, images)


def test_libsvm_whole_float_labels_and_rounding_slack(tmp_path):
    (tmp_path / "usps").write_text("1.0 1:1.0000001 2:-1\n10 256:0\n")
    digits = read_source(tmp_path / "usps")["train"]
    np.testing.assert_array_equal(digits.labels, [0, 9])
    assert digits.images[0, 0, 0, 0] == 255 and digits.images[0, 0, 1, 0] == 0 and digits.images[1, 15, 15, 0] == 128


def test_svhn_float_images_in_unit_range(tmp_path, rng):
    images = rng.random((32, 32, 3, 2))
    savemat(tmp_path / "test_32x32.mat", {"X": images, "y": np.array([[10], [4]], np.float64)})
    digits = read_source(tmp_path / "test_32x32.mat")["test"]
    np.testing.assert_array_equal(digits.images[1], np.round(images[:, :, :, 1] * 255).astype(np.uint8))
    np.testing.assert_array_equal(digits.labels, [0, 4])
