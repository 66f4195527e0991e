"""Each kind of bad input: one clear line naming the file (and row), exit code 2, nothing written."""

from __future__ import annotations

import bz2
import gzip
import io
import os
import stat
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from tests.data.helpers import random_digits, write_course, write_png


@pytest.fixture
def course_root(tmp_path, rng):
    root = tmp_path / "mnistm"
    write_course(root, {"train": random_digits(rng, 6), "val": random_digits(rng, 3)})
    return root


def assert_clean_error(run_cli, tmp_path, source, *expected_fragments):
    out = tmp_path / "prepared"
    code, _, stderr = run_cli("data", "prepare", source, "--out", out)
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


# --- the audit's findings, each reproduced first and kept as a regression test --------------------------


def assert_one_line_error(code, stderr, *expected_fragments):
    """The CLI contract: exit status 2 and exactly one line ``error: ...`` on stderr (no warning before it)."""
    message = stderr.strip()
    assert code == 2, (code, message)
    assert message.startswith("error: ") and "\n" not in message, message
    for fragment in expected_fragments:
        assert fragment in message, message
    return message


def png_declaring(width: int, height: int) -> bytes:
    """A small valid PNG whose header (IHDR, CRC fixed) declares ``width`` x ``height``: decoding it would
    need gigabytes, reading its header costs nothing."""
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# Class 1: silent wrong results.


def test_nan_in_float_npz_prepare(run_cli, tmp_path):
    images = np.random.default_rng(0).random((6, 8, 8), dtype=np.float32)
    images[2, 3, 4] = np.nan
    np.savez(tmp_path / "digits.npz", x=images, y=np.arange(6))
    assert_clean_error(run_cli, tmp_path, tmp_path / "digits.npz", "digits.npz", "array 'x'", "NaN")


@pytest.mark.parametrize("value", [np.inf, -np.inf, 1e30, -0.5])
def test_float_npz_out_of_range(run_cli, tmp_path, value):
    images = np.zeros((6, 8, 8), np.float64)
    images[1, 0, 0] = value
    np.savez(tmp_path / "digits.npz", x_train=images, y_train=np.arange(6))
    assert_clean_error(run_cli, tmp_path, tmp_path / "digits.npz", "digits.npz", "array 'x_train'")


def test_nan_in_float_npz_adapt_train(run_cli, tmp_path):
    images = np.full((20, 8, 8), 0.5, np.float32)
    images[0, 0, 0] = np.nan
    np.savez(tmp_path / "usps16.npz", x=images, y=np.arange(20) % 10)
    out = tmp_path / "run"
    code, _, stderr = run_cli("adapt", "train", "--method", "source", "--source", tmp_path / "usps16.npz",
                              "--target", tmp_path / "usps16.npz", "--out", out, "--epochs", "1", "--device", "cpu")
    assert_one_line_error(code, stderr, "usps16.npz", "NaN")
    assert not out.exists()


def test_16bit_png_is_scaled_not_saturated(tmp_path):
    from diffadapt.data.imageio import read_image

    values = np.array([[0, 128, 40000, 65535], [257, 514, 32896, 65278]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    image = read_image(tmp_path / "deep.png")
    assert image.dtype == np.uint8 and image.shape == (2, 4, 1)
    np.testing.assert_array_equal(image[:, :, 0], [[0, 0, 156, 255], [1, 2, 128, 254]])


def test_16bit_png_prepare_round_trip(run_cli, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((6, 6), 40000 + i, np.uint16)).save(folder / f"{i}.png")
    out = tmp_path / "prepared"
    code, _, stderr = run_cli("data", "prepare", folder, "--out", out)
    assert code == 0, stderr
    written = np.asarray(Image.open(out / "unlabelled" / "00000.png"))
    assert written.max() == 156, "a 16-bit value of 40000 is 156 in 8 bits, not a saturated 255"


def test_32bit_integer_image_outside_16bit_range(tmp_path):
    from diffadapt.data.imageio import read_image
    from diffadapt.errors import InputError

    Image.fromarray(np.full((4, 4), 70000, np.int32)).save(tmp_path / "wide.tif")
    with pytest.raises(InputError, match=r"wide\.tif: 32-bit integer image holds values from 70000 to 70000"):
        read_image(tmp_path / "wide.tif")


@pytest.mark.parametrize(("value", "expected"), [(0.5, 128), (200.0, 200)])
def test_float_tiff_ranges(tmp_path, value, expected):
    from diffadapt.data.imageio import read_image

    Image.fromarray(np.full((4, 4), value, np.float32)).save(tmp_path / "float.tif")
    assert read_image(tmp_path / "float.tif")[0, 0, 0] == expected


@pytest.mark.parametrize("value", [np.nan, 300.0, -1.0])
def test_float_tiff_refused(tmp_path, value):
    from diffadapt.data.imageio import read_image
    from diffadapt.errors import InputError

    Image.fromarray(np.full((4, 4), value, np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(InputError, match=r"float\.tif: 32-bit float image"):
        read_image(tmp_path / "float.tif")


# Class 2: files outside the data folder.


@pytest.mark.parametrize("where", ["relative", "absolute", "symlink"])
def test_course_csv_cannot_leave_data(run_cli, tmp_path, course_root, rng, where):
    secret = tmp_path / "secret.png"
    write_png(secret, random_digits(rng, 1)[0][0])
    if where == "relative":
        name = "../../secret.png"
    elif where == "absolute":
        name = str(secret)
    else:
        (course_root / "data" / "link.png").symlink_to(secret)
        name = "link.png"
    with open(course_root / "train.csv", "a") as handle:
        handle.write(f"{name},1\n")
    message = assert_clean_error(run_cli, tmp_path, course_root, "train.csv, row 8", "outside")
    assert "secret" not in message or where != "symlink"


def test_course_symlink_inside_data_is_read(run_cli, tmp_path, course_root):
    (course_root / "data" / "again.png").symlink_to(course_root / "data" / "00000.png")
    with open(course_root / "train.csv", "a") as handle:
        handle.write("again.png,0\n")
    code, _, stderr = run_cli("data", "info", course_root)
    assert code == 0, stderr


def test_class_folder_symlink_outside(run_cli, tmp_path, rng):
    root = tmp_path / "classes"
    for label in (0, 1):
        (root / str(label)).mkdir(parents=True)
        write_png(root / str(label) / "a.png", random_digits(rng, 1)[0][0])
    write_png(tmp_path / "secret.png", random_digits(rng, 1)[0][0])
    (root / "1" / "b.png").symlink_to(tmp_path / "secret.png")
    assert_clean_error(run_cli, tmp_path, root, "b.png", "outside")


def test_class_subfolder_symlink_outside(run_cli, tmp_path, rng):
    root = tmp_path / "classes"
    (root / "0").mkdir(parents=True)
    write_png(root / "0" / "a.png", random_digits(rng, 1)[0][0])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_png(elsewhere / "x.png", random_digits(rng, 1)[0][0])
    (root / "1").symlink_to(elsewhere)
    assert_clean_error(run_cli, tmp_path, root, "classes/1", "outside")


@pytest.mark.parametrize("name, split", [("07", ""), ("-0", ""), ("10", ""), ("cat", ""), ("x1", "train")])
def test_misnamed_class_folder_is_named(run_cli, tmp_path, rng, name, split):
    root = tmp_path / "classes"
    for label in ("0", name):
        (root / split / label).mkdir(parents=True)
        write_png(root / split / label / "a.png", random_digits(rng, 1)[0][0])
    assert_clean_error(run_cli, tmp_path, root, "class subfolders must be named 0..9", f"found {name!r}")


def test_unlabelled_folder_symlink_outside(run_cli, tmp_path, rng):
    root = tmp_path / "images"
    root.mkdir()
    write_png(root / "a.png", random_digits(rng, 1)[0][0])
    write_png(tmp_path / "secret.png", random_digits(rng, 1)[0][0])
    (root / "b.png").symlink_to(tmp_path / "secret.png")
    assert_clean_error(run_cli, tmp_path, root, "b.png", "outside")


def test_mnistm_labels_cannot_leave_image_folder(run_cli, tmp_path, rng):
    root = tmp_path / "mnist_m"
    (root / "mnist_m_train").mkdir(parents=True)
    write_png(root / "mnist_m_train" / "00000000.png", random_digits(rng, 1, side=32)[0][0])
    write_png(root / "secret.png", random_digits(rng, 1, side=32)[0][0])
    (root / "mnist_m_train_labels.txt").write_text("00000000.png 3\n../secret.png 4\n")
    assert_clean_error(run_cli, tmp_path, root, "mnist_m_train_labels.txt, row 2", "outside")


# Class 3: tracebacks that are now one line.


@pytest.mark.parametrize("side", [20000, 10000, 5000])  # PIL's error, PIL's warning, our own limit
def test_decompression_bomb_data_info(run_cli, tmp_path, side):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(png_declaring(side, side))
    code, _, stderr = run_cli("data", "info", folder)
    assert_one_line_error(code, stderr, "bomb.png", "4096x4096")


def test_decompression_bomb_adapt_train(run_cli, tmp_path, course_root):
    (course_root / "data" / "00001.png").write_bytes(png_declaring(20000, 20000))
    out = tmp_path / "run"
    code, _, stderr = run_cli("adapt", "train", "--method", "source", "--source", course_root, "--target", course_root,
                              "--out", out, "--epochs", "1", "--device", "cpu")
    assert_one_line_error(code, stderr, "00001.png", "megapixels")
    assert not out.exists()


def test_decompression_bomb_adapt_predict(run_cli, tmp_path):
    folder = tmp_path / "targets"
    folder.mkdir()
    (folder / "bomb.png").write_bytes(png_declaring(20000, 20000))
    out = tmp_path / "pred.csv"
    code, _, stderr = run_cli("adapt", "predict", folder, out, "--shipped", "usps")
    assert_one_line_error(code, stderr, "bomb.png", "megapixels")
    assert not out.exists()


def test_decompression_bomb_faces_reader(tmp_path):
    import zipfile

    from diffadapt.data.face_images import read_face_images
    from diffadapt.errors import InputError

    with zipfile.ZipFile(tmp_path / "faces.zip", "w") as archive:
        archive.writestr("000001.png", png_declaring(20000, 20000))
    with pytest.raises(InputError, match=r"faces\.zip, member 000001\.png: image declares more than"):
        read_face_images(tmp_path / "faces.zip", 32)


def test_latin1_csv(run_cli, tmp_path, course_root):
    (course_root / "train.csv").write_bytes(b"image_name,label\n00000.png,0\n\xe9t\xe9.png,1\n")
    assert_clean_error(run_cli, tmp_path, course_root, "train.csv, row 3", "UTF-8")


def test_csv_with_byte_order_mark_is_read(run_cli, tmp_path, course_root):
    text = (course_root / "train.csv").read_text()
    (course_root / "train.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    code, _, stderr = run_cli("data", "info", course_root)
    assert code == 0, stderr


@pytest.mark.parametrize(("label", "fragment"), [
    ("12345678901234567890123", "label 12345678901234567890123 is outside 0..9"),
    ("1_0", "not a whole number"),
    ("-3", "outside 0..9"),
    ("\u0663", "not a whole number"),  # ARABIC-INDIC DIGIT THREE: int() would take it
])
def test_absurd_labels(run_cli, tmp_path, course_root, label, fragment):
    text = (course_root / "train.csv").read_text().replace("00001.png,1", f"00001.png,{label}")
    (course_root / "train.csv").write_text(text)
    assert_clean_error(run_cli, tmp_path, course_root, "train.csv, row 3", fragment)


def test_huge_csv_field(run_cli, tmp_path, course_root):
    (course_root / "train.csv").write_text("image_name,label\n" + "x" * 200_000 + ",1\n")
    assert_clean_error(run_cli, tmp_path, course_root, "train.csv", "malformed csv")


def test_folder_where_csv_expected(run_cli, tmp_path, course_root):
    (course_root / "train.csv").unlink()
    (course_root / "train.csv").mkdir()
    assert_clean_error(run_cli, tmp_path, course_root, "train.csv", "is a folder")


def test_bad_domain_file(run_cli, tmp_path, course_root):
    (course_root / "domain.txt").write_bytes(b"\xff\xfe")
    assert_clean_error(run_cli, tmp_path, course_root, "domain.txt", "UTF-8")


def _idx_bytes(array: np.ndarray) -> bytes:
    header = (0x0800 | array.ndim).to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture
def idx_root(tmp_path, rng):
    root = tmp_path / "mnist"
    root.mkdir()
    images, labels = random_digits(rng, 7, channels=1)
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images[:, :, :, 0]), mtime=0))
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels), mtime=0))
    return root


def test_idx_corrupt_deflate_stream(run_cli, tmp_path, idx_root):
    path = idx_root / "t10k-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF  # the first byte of the deflate stream: zlib.error "invalid code lengths set"
    path.write_bytes(bytes(data))
    assert_clean_error(run_cli, tmp_path, idx_root, "t10k-images-idx3-ubyte.gz", "cannot read IDX file")


def test_idx_bad_gzip_header(run_cli, tmp_path, idx_root):
    path = idx_root / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(b"\x1f\x8b\x63" + path.read_bytes()[3:])  # compression method 99: gzip.BadGzipFile
    assert_clean_error(run_cli, tmp_path, idx_root, "t10k-labels-idx1-ubyte.gz", "cannot read IDX file")


@pytest.mark.parametrize("shape", [(2**31, 2**31, 2**31), (2**20, 2**16, 2**16), (70_000, 1024, 1024)])
def test_idx_header_declaring_huge_sizes(run_cli, tmp_path, idx_root, shape):
    path = idx_root / "t10k-images-idx3-ubyte.gz"
    header = (0x0803).to_bytes(4, "big") + b"".join(s.to_bytes(4, "big") for s in shape)
    path.write_bytes(gzip.compress(header + b"\x00" * 100))
    assert_clean_error(run_cli, tmp_path, idx_root, "t10k-images-idx3-ubyte.gz", "GiB limit")


@pytest.mark.parametrize(("arrays", "fragment"), [
    ({"x": np.array([["a", "b"]]), "y": np.arange(1)}, "strings"),
    ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.int64(3)}, "shape (N,) or (N, 1)"),
    ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.zeros((2, 2))}, "shape (N,) or (N, 1)"),
    ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.array(["1", "2"])}, "strings"),
    ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.array([1.5, 2])}, "not a whole number"),
    ({"x": np.zeros((2, 8, 8), complex), "y": np.arange(2)}, "complex"),
    ({"x": np.full((2, 8, 8), 300, np.int64), "y": np.arange(2)}, "0..255"),
    ({"x": np.zeros((0, 8, 8), np.uint8), "y": np.arange(0)}, "no images"),
])
def test_npz_odd_arrays(run_cli, tmp_path, arrays, fragment):
    np.savez(tmp_path / "digits.npz", **arrays)
    assert_clean_error(run_cli, tmp_path, tmp_path / "digits.npz", "digits.npz", fragment)


def test_npz_object_array(run_cli, tmp_path):
    np.savez(tmp_path / "digits.npz", x=np.array([None, 1], dtype=object), y=np.arange(2))
    assert_clean_error(run_cli, tmp_path, tmp_path / "digits.npz", "digits.npz", "Python objects")


def test_npy_given_as_npz(run_cli, tmp_path):
    np.save(tmp_path / "digits.npy", np.zeros((2, 8, 8), np.uint8))
    (tmp_path / "digits.npy").rename(tmp_path / "digits.npz")
    assert_clean_error(run_cli, tmp_path, tmp_path / "digits.npz", "digits.npz", "single array")


@pytest.mark.parametrize(("arrays", "fragment"), [
    ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array(["a", "b"])}, "'y' must be whole numbers"),
    ({"X": np.full((32, 32, 3, 2), 1e6), "y": np.array([[1], [2]])}, "'X': values from"),
    ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1, 2], [3, 4]])}, "'y' must have shape"),
    ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]])}, "row 2"),
    ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": {"a": 1}}, "'y' must be whole numbers"),
])
def test_mat_odd_arrays(run_cli, tmp_path, arrays, fragment):
    savemat(tmp_path / "train_32x32.mat", arrays)
    assert_clean_error(run_cli, tmp_path, tmp_path / "train_32x32.mat", "train_32x32.mat", fragment)


def _usps_h5(path, build):
    import h5py

    with h5py.File(path, "w") as handle:
        build(handle)


def _group(data, target=None):
    """A builder of ``train`` with ``data`` and (unless None) ``target``."""

    def build(handle):
        group = handle.create_group("train")
        group["data"] = data
        if target is not None:
            group["target"] = target

    return build


def _target_is_a_group(handle):
    _group(np.zeros((2, 256)))(handle)
    handle["train"].create_group("target")


@pytest.mark.parametrize(("build", "fragment"), [
    (lambda handle: handle.create_dataset("train", data=np.zeros(3)), "'train' must be a group"),
    (_target_is_a_group, "train/target must be a dataset"),
    (_group(np.array([b"x", b"y"]), np.arange(2)), "byte strings"),
    (_group(np.full((2, 256), np.nan), np.arange(2)), "NaN"),
    (_group(np.full((2, 256), 255.0), np.arange(2)), "[0, 1]"),
    (_group(np.zeros((2, 256)), np.array([[1, 2], [3, 4]])), "train/target must have shape"),
    (_group(np.zeros((2, 16, 16)), np.arange(2)), "(N, 256)"),
    (_group(np.zeros((2, 256))), "needs 'data' and 'target'"),
])
def test_usps_h5_structure(run_cli, tmp_path, build, fragment):
    _usps_h5(tmp_path / "usps.h5", build)
    assert_clean_error(run_cli, tmp_path, tmp_path / "usps.h5", "usps.h5", fragment)


def test_usps_h5_soft_link_to_nowhere(run_cli, tmp_path):
    import h5py

    with h5py.File(tmp_path / "usps.h5", "w") as handle:
        handle["train"] = h5py.SoftLink("/nowhere")
    assert_clean_error(run_cli, tmp_path, tmp_path / "usps.h5", "usps.h5")


def _external_storage(handle, where):
    secret = where / "elsewhere.bin"
    secret.write_bytes(np.zeros(2 * 256, np.float64).tobytes())
    group = handle.create_group("train")
    group.create_dataset("data", shape=(2, 256), dtype=np.float64, external=[(str(secret), 0, 2 * 256 * 8)])
    group.create_dataset("target", data=np.arange(2))


def _external_link(handle, where):
    import h5py

    with h5py.File(where / "other.h5", "w") as other:
        _group(np.zeros((2, 256)), np.arange(2))(other)
    handle["train"] = h5py.ExternalLink(str(where / "other.h5"), "/train")


@pytest.mark.parametrize(("build", "fragment"), [
    (_external_storage, "keeps its values in other files"),
    (_external_link, "is a link"),
])
def test_usps_h5_cannot_read_other_files(run_cli, tmp_path, build, fragment):
    import h5py

    data = tmp_path / "data"
    data.mkdir()
    with h5py.File(data / "usps.h5", "w") as handle:
        build(handle, tmp_path)
    assert_clean_error(run_cli, tmp_path, data / "usps.h5", "usps.h5", fragment)


@pytest.mark.parametrize(("line", "fragment"), [
    ("1 1:nan", "value 'nan' is not a number"),
    ("1 1:inf", "value 'inf' is not a number"),
    ("1 1:1e400", "outside [-1, 1]"),
    ("1 1:3.5", "outside [-1, 1]"),
    ("1e400 1:0.5", "not a whole number"),
    ("nan 1:0.5", "not a number"),
    ("1.5 1:0.5", "not a whole number"),
    ("11 1:0.5", "outside 1..10"),
    ("1 1:0.5:3", "not a number"),
    ("1 1:0.5 1:0.7", "appears twice"),
    ("1 0:0.5", "outside 1..256"),
    ("1 257:0.5", "outside 1..256"),
    ("1 99999999999999999999:0.5", "outside 1..256"),
    ("1 x:0.5", "index:value"),
    ("1 1_0:0.5", "index:value"),
])
def test_libsvm_oddities(run_cli, tmp_path, line, fragment):
    (tmp_path / "usps.t").write_text("1 1:0.5 2:-0.5\n" + line + "\n")
    assert_clean_error(run_cli, tmp_path, tmp_path / "usps.t", "usps.t, row 2", fragment)


def test_libsvm_corrupt_bz2(run_cli, tmp_path):
    data = bytearray(bz2.compress(b"1 1:0.5\n" * 100))
    data[20] ^= 0xFF
    (tmp_path / "usps.bz2").write_bytes(bytes(data))
    assert_clean_error(run_cli, tmp_path, tmp_path / "usps.bz2", "usps.bz2", "cannot read LIBSVM file")


def test_libsvm_not_utf8(run_cli, tmp_path):
    (tmp_path / "usps").write_bytes(b"1 1:0.5\n2 1:0.5\xff\n")
    assert_clean_error(run_cli, tmp_path, tmp_path / "usps", "usps, row 2", "UTF-8")


# Class 4: no library warning before (or instead of) the one-line error.


def test_readers_emit_no_warnings(tmp_path, rng):
    from diffadapt.data.imageio import read_image
    from diffadapt.data.sources import read_source
    from diffadapt.errors import InputError

    palette = Image.new("P", (8, 8))
    palette.info["transparency"] = b"\x00" * 256
    palette.save(tmp_path / "palette.png", transparency=0)
    (tmp_path / "bomb.png").write_bytes(png_declaring(10000, 10000))  # PIL warns between 89 and 179 Mpx
    np.savez(tmp_path / "nan.npz", x=np.array([[[np.nan]]]), y=np.zeros(1))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_image(tmp_path / "palette.png").shape == (8, 8, 3)
        for bad in ("bomb.png", "nan.npz"):
            with pytest.raises(InputError):
                read_image(tmp_path / bad) if bad.endswith(".png") else read_source(tmp_path / bad)
    assert not caught, [str(w.message) for w in caught]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_output_that_is_a_pipe_is_not_replaced(run_cli, tmp_path):
    pipe = tmp_path / "out.png"
    os.mkfifo(pipe)
    code, _, err = run_cli("data", "preview", "mnist", "--out", pipe)
    assert code == 2 and "not a file" in err and len(err.strip().splitlines()) == 1
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode) and list(tmp_path.iterdir()) == [pipe]


@pytest.mark.parametrize("alias", ["a.png", "./a.png"])
def test_a_csv_naming_an_image_twice_is_refused_before_reading(run_cli, tmp_path, monkeypatch, alias):
    """A million rows naming one small image were read a million times (minutes, gigabytes): a csv names each
    image once, checked on the names alone."""
    root = tmp_path / "course"
    (root / "data").mkdir(parents=True)
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(root / "data" / "a.png")
    (root / "train.csv").write_text(f"image_name,label\na.png,1\nb.png,2\n{alias},3\n")
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(root / "data" / "b.png")

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr("diffadapt.data.imageio.decode", no_decoding)
    code, _, err = run_cli("data", "info", root)
    assert code == 2 and "row 4" in err and "named again (first on row 2)" in err and len(err.strip().splitlines()) == 1, err


def test_images_declaring_more_than_the_array_limit_are_refused_before_decoding(tmp_path, monkeypatch):
    """The first header fixes the shape, so N images of it are checked against MAX_ARRAY_BYTES before any is decoded."""
    from diffadapt.data.imageio import read_images
    from diffadapt.errors import InputError

    paths = []
    for index in range(5):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(paths[-1])
    monkeypatch.setattr("diffadapt.data.formats.checks.MAX_ARRAY_BYTES", 4 * 28 * 28 * 3)  # room for four

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr("diffadapt.data.imageio.decode", no_decoding)
    with pytest.raises(InputError, match=r"the list of 5 images of 28x28x3 declares a 5x28x28x3 array"):
        read_images(paths, progress=False, source=tmp_path)
    monkeypatch.undo()
    assert read_images(paths[:4], progress=False).shape == (4, 28, 28, 3)
