"""Fuzzing the array readers: npz, MNIST IDX (plain and .gz), SVHN .mat, usps.h5 and LIBSVM usps(.bz2).

Each reader gets mutated bytes of small valid files made here and fully random bytes; the container
formats also get structure-aware cases (a valid zip, .mat or HDF5 file whose arrays have random dtypes,
shapes and values), which reach the checks behind the container's own.
"""

from __future__ import annotations

import bz2
import gzip
import io
import zipfile

import h5py
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.io import savemat

from diffadapt.data.formats.idx import read_idx_folder
from diffadapt.data.formats.npz import read_npz
from diffadapt.data.formats.svhn import read_svhn_mat
from diffadapt.data.formats.usps import read_usps_h5, read_usps_libsvm
from tests.fuzz.mutate import check_digits, check_splits, file_bytes, mutated, outcome

_rng = np.random.default_rng(0)
_IMAGES = _rng.integers(0, 256, (4, 6, 6), dtype=np.uint8)
_LABELS = np.array([0, 3, 9, 5], np.uint8)

# Random arrays of every dtype numpy writes (strings, booleans, complex, dates included), odd shapes, any values.
_ANY_DTYPE = st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(max_len=3), hnp.unicode_string_dtypes(max_len=3))
_ANY_ARRAY = hnp.arrays(_ANY_DTYPE, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5))
_PIXELS = st.one_of(
    hnp.arrays(st.sampled_from([np.uint8, np.int64, np.float32, np.float64, np.uint16, np.bool_]),
               st.sampled_from([(4, 6, 6), (4, 6, 6, 1), (4, 6, 6, 3), (4, 6, 6, 2), (0, 6, 6), (4, 0, 6)])),
    _ANY_ARRAY,
)
_LABEL_ARRAYS = st.one_of(
    hnp.arrays(st.sampled_from([np.uint8, np.int64, np.float64, np.int8, np.uint64]),
               st.sampled_from([(4,), (4, 1), (1, 4), (4, 2), (), (3,)])),
    _ANY_ARRAY,
)


# --- npz -------------------------------------------------------------------------------------------------

def _npz(compressed: bool, **arrays) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


NPZ_SEEDS = (
    _npz(False, x=_IMAGES, y=_LABELS),
    _npz(True, x_train=_IMAGES, y_train=_LABELS, x_test=_IMAGES[:2], y_test=_LABELS[:2]),
    _npz(False, x=_IMAGES.astype(np.float32) / 255, y=_LABELS.astype(np.int64)),
)


@st.composite
def npz_files(draw) -> bytes:
    how = draw(st.sampled_from(["bytes", "members", "arrays"]))
    if how == "bytes":
        return draw(file_bytes(*NPZ_SEEDS))
    if how == "arrays":  # a valid archive of random arrays
        buffer = io.BytesIO()
        np.savez(buffer, x=draw(_PIXELS), y=draw(_LABEL_ARRAYS))
        return buffer.getvalue()
    # A valid zip whose .npy members are mutated: the npy header parser and the array reader get the damage.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))) as archive:
        for name, array in (("x", _IMAGES), ("y", _LABELS)):
            seed = _npy(array)
            member = draw(st.one_of(mutated(seed), st.just(seed)))
            archive.writestr(draw(st.sampled_from([f"{name}.npy", name, f"{name}.npy"])), member)
    return buffer.getvalue()


@given(data=npz_files())
def test_fuzz_npz(scratch, data):
    path = scratch / "digits.npz"
    path.write_bytes(data)
    splits = outcome(lambda: read_npz(path, "digits"))
    if splits is not None:
        check_splits(splits)


# --- IDX -------------------------------------------------------------------------------------------------

def _idx(array: np.ndarray) -> bytes:
    header = (0x0800 | array.ndim).to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return header + array.tobytes()


IDX_IMAGES, IDX_LABELS = _idx(_IMAGES), _idx(_LABELS)


@st.composite
def idx_pair(draw) -> tuple[bytes, bytes, bool]:
    """(images file, labels file, gzipped): one of the two mutated, before or after gzip."""
    gz = draw(st.booleans())
    images, labels = IDX_IMAGES, IDX_LABELS
    target = draw(st.sampled_from(["images", "labels"]))
    seed = images if target == "images" else labels
    if gz and draw(st.booleans()):
        damaged = draw(file_bytes(gzip.compress(seed, mtime=0)))  # damage in the gzip stream itself
    else:
        damaged = draw(file_bytes(seed))
        damaged = gzip.compress(damaged, mtime=0) if gz else damaged
    other = gzip.compress(labels if target == "images" else images, mtime=0) if gz else (labels if target == "images" else images)
    return (damaged, other, gz) if target == "images" else (other, damaged, gz)


@given(files=idx_pair())
def test_fuzz_idx(scratch, files):
    images, labels, gz = files
    root = scratch / "idx"
    root.mkdir(exist_ok=True)
    for path in root.iterdir():
        path.unlink()
    suffix = ".gz" if gz else ""
    (root / f"t10k-images-idx3-ubyte{suffix}").write_bytes(images)
    (root / f"t10k-labels-idx1-ubyte{suffix}").write_bytes(labels)
    splits = outcome(lambda: read_idx_folder(root, "mnist"))
    if splits is not None:
        check_splits(splits)


# --- SVHN .mat ---------------------------------------------------------------------------------------------

def _mat(compress: bool, **arrays) -> bytes:
    buffer = io.BytesIO()
    savemat(buffer, arrays, do_compression=compress)
    return buffer.getvalue()


_X = _rng.integers(0, 256, (8, 8, 3, 4), dtype=np.uint8)
_Y = np.array([[10], [1], [2], [9]], np.uint8)
MAT_SEEDS = (_mat(False, X=_X, y=_Y), _mat(True, X=_X, y=_Y), _mat(False, X=_X.astype(np.float64) / 255, y=_Y.astype(np.float64)))
_MAT_VALUES = st.one_of(
    hnp.arrays(st.sampled_from([np.uint8, np.float64, np.int32, np.uint16, np.bool_, np.complex128]),
               st.sampled_from([(8, 8, 3, 4), (8, 8, 4), (8, 8, 3, 0), (4, 1), (1, 4), (4,), (4, 2)])),
    hnp.arrays(st.sampled_from([np.float64, np.int16]), hnp.array_shapes(max_dims=4, max_side=4)),
    st.sampled_from(["text", ["a", "b"], {"field": 1}, [[1, 2], [3]]]),
)


@st.composite
def mat_files(draw) -> bytes:
    if draw(st.booleans()):
        return draw(file_bytes(*MAT_SEEDS))
    return _mat(draw(st.booleans()), X=draw(_MAT_VALUES), y=draw(_MAT_VALUES))


@given(data=mat_files())
def test_fuzz_svhn_mat(scratch, data):
    path = scratch / "train_32x32.mat"
    path.write_bytes(data)
    digits = outcome(lambda: read_svhn_mat(path))
    if digits is not None:
        check_digits(digits)


# --- usps.h5 -----------------------------------------------------------------------------------------------

def _h5(build) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        build(handle)
    return buffer.getvalue()


def _usps_groups(handle, data=None, target=None, compression=None):
    for split in ("train", "test"):
        group = handle.create_group(split)
        group.create_dataset("data", data=_rng.random((3, 256)) if data is None else data, compression=compression)
        group.create_dataset("target", data=np.array([1, 5, 9]) if target is None else target)


H5_SEEDS = (_h5(_usps_groups), _h5(lambda h: _usps_groups(h, compression="gzip")))
_H5_VALUES = st.one_of(
    hnp.arrays(st.sampled_from([np.float64, np.float32, np.uint8, np.int64, np.bool_]),
               st.sampled_from([(3, 256), (3, 16, 16), (0, 256), (3,), (3, 1), ()])),
    hnp.arrays(st.one_of(hnp.integer_dtypes(), hnp.floating_dtypes(), hnp.byte_string_dtypes(max_len=2)),
               hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)),
)


@st.composite
def h5_files(draw) -> bytes:
    if draw(st.booleans()):
        return draw(file_bytes(*H5_SEEDS, max_random=256))
    kind = draw(st.sampled_from(["arrays", "dataset as group", "group as dataset", "missing"]))
    if kind == "arrays":
        return _h5(lambda h: _usps_groups(h, draw(_H5_VALUES), draw(_H5_VALUES)))
    if kind == "dataset as group":
        return _h5(lambda h: h.create_dataset("train", data=np.zeros(3)))
    if kind == "group as dataset":
        return _h5(lambda h: h.create_group("train/data") and h.create_dataset("train/target", data=np.arange(3)))
    return _h5(lambda h: h.create_group("test").create_dataset("data", data=np.zeros((2, 256))))


@given(data=h5_files())
def test_fuzz_usps_h5(scratch, data):
    path = scratch / "usps.h5"
    path.write_bytes(data)
    splits = outcome(lambda: read_usps_h5(path))
    if splits is not None:
        check_splits(splits)


# --- LIBSVM usps(.bz2) -----------------------------------------------------------------------------------

def _libsvm_line(label: str, pairs: list[tuple[str, str]]) -> str:
    return " ".join([label] + [f"{i}:{v}" for i, v in pairs])


_VALID_TEXT = "\n".join(
    _libsvm_line(str(d + 1), [(str(i + 1), f"{v:.6f}") for i, v in enumerate(_rng.uniform(-1, 1, 256)) if i % 7]) for d in (0, 4, 9)
) + "\n"
_TOKENS = st.sampled_from(["1", "10", "0", "11", "-1", "1.0", "1.5", "nan", "inf", "-inf", "1e400", "1e-400", "1_0", "\u0663", "",
                           "256", "257", "99999999999999999999", "0.5", "-1.0000001", "1.000001", "+1", ".5", "5.", "e5"])


@st.composite
def libsvm_files(draw) -> tuple[bytes, bool]:
    compressed = draw(st.booleans())
    if draw(st.booleans()):
        text = draw(file_bytes(_VALID_TEXT.encode(), max_random=256))
    else:
        lines = draw(st.lists(st.tuples(_TOKENS, st.lists(st.tuples(_TOKENS, _TOKENS), max_size=6)), min_size=0, max_size=4))
        text = "\n".join(_libsvm_line(label, pairs) for label, pairs in lines).encode()
    data = bz2.compress(text) if compressed else text
    if compressed and draw(st.integers(0, 3)) == 0:
        data = draw(mutated(data))  # damage in the bzip2 stream itself
    return data, compressed


@given(file=libsvm_files())
def test_fuzz_usps_libsvm(scratch, file):
    data, compressed = file
    path = scratch / ("usps.bz2" if compressed else "usps")
    path.write_bytes(data)
    digits = outcome(lambda: read_usps_libsvm(path))
    if digits is not None:
        check_digits(digits)
        assert digits.size == (16, 16) and digits.channels == 1
