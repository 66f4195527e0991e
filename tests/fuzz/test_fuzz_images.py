"""Fuzzing the image readers (read_image, read_images) and the course layout's csv.

Seeds are tiny valid files written here: PNG in the modes users have (gray, RGB, 16-bit, palette with
transparency, gray + alpha) and one file of every other format we read (JPEG, BMP, GIF, TIFF, WebP).
Half of the mutated PNGs get their chunk CRCs recomputed, so the mutation reaches the decoder itself.
"""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from diffadapt.data.imageio import MAX_PIXELS, read_image, read_images
from diffadapt.data.sources import read_source
from tests.fuzz.mutate import check_image, check_splits, file_bytes, fix_png_crcs, outcome


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


_rng = np.random.default_rng(0)
_GRAY = Image.fromarray(_rng.integers(0, 256, (8, 8), dtype=np.uint8))
_RGB = Image.fromarray(_rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
PNG_SEEDS = (
    _encode(_GRAY, "PNG"),
    _encode(_RGB, "PNG"),
    _encode(Image.fromarray(_rng.integers(0, 65536, (8, 8)).astype(np.uint16)), "PNG"),
    _encode(_RGB.convert("P"), "PNG", transparency=0),
    _encode(_GRAY.convert("LA"), "PNG"),
    _encode(_GRAY.convert("1"), "PNG"),
)
OTHER_SEEDS = (
    _encode(_RGB, "JPEG", quality=90),
    _encode(_GRAY, "JPEG"),
    _encode(_RGB, "BMP"),
    _encode(_RGB.convert("P"), "GIF"),
    _encode(_RGB, "TIFF"),
    _encode(_RGB, "TIFF", compression="tiff_lzw"),
    _encode(Image.fromarray(_rng.random((8, 8), dtype=np.float32)), "TIFF"),
    _encode(Image.fromarray(_rng.integers(0, 65536, (8, 8)).astype(np.uint16)), "TIFF"),
    _encode(_RGB, "WEBP", lossless=True),
)


@st.composite
def png_files(draw) -> bytes:
    data = draw(file_bytes(*PNG_SEEDS))
    return fix_png_crcs(data) if draw(st.booleans()) else data


@given(data=png_files())
def test_fuzz_png_read_image(scratch, data):
    path = scratch / "image.png"
    path.write_bytes(data)
    image = outcome(lambda: read_image(path))
    if image is not None:
        check_image(image, MAX_PIXELS)


@given(data=file_bytes(*OTHER_SEEDS))
def test_fuzz_other_formats_read_image(scratch, data):
    path = scratch / "image.tif"
    path.write_bytes(data)
    image = outcome(lambda: read_image(path))
    if image is not None:
        check_image(image, MAX_PIXELS)


@given(data=png_files(), position=st.integers(0, 2))
def test_fuzz_png_read_images(scratch, data, position):
    folder = scratch / "many"
    folder.mkdir(exist_ok=True)
    paths = [folder / f"{i}.png" for i in range(3)]
    for i, path in enumerate(paths):
        path.write_bytes(data if i == position else PNG_SEEDS[0])
    images = outcome(lambda: read_images(paths, workers=2, progress=False))
    if images is not None:
        assert images.dtype == np.uint8 and images.shape == (3, 8, 8, 1), images.shape


# --- the course layout: csv rows built from odd names and labels, and mutated csv bytes --------------------

_NAMES = st.one_of(
    st.sampled_from(["00000.png", "00001.png", "00002.png", "./00001.png", "sub/00000.png", "../secret.png",
                     "../../secret.png", "SECRET_ABS", "LINK_OUT", "LINK_IN", "", ".", "..", "data", "00000.png\x00x",
                     "nothere.png", "/", "00000.PNG", " 00001.png ", "a" * 300]),
    st.text(max_size=20),
)
_LABELS = st.one_of(
    st.integers(-3, 12).map(str),
    st.sampled_from(["12345678901234567890123", "1_0", "\u0663", "+1", "01", "1.0", "nan", "", " 3", "1e3", "-0"]),
    st.text(max_size=6),
)


@st.composite
def course_csvs(draw) -> bytes:
    if draw(st.integers(0, 3)) == 0:
        valid = b"image_name,label\n00000.png,0\n00001.png,1\n00002.png,2\n"
        return draw(file_bytes(valid, max_random=128))
    header = draw(st.sampled_from(["image_name,label", "image_name,label,extra", "label,image_name", "", "\ufeffimage_name,label"]))
    rows = draw(st.lists(st.tuples(_NAMES, _LABELS), max_size=6))
    quote = draw(st.booleans())
    lines = [header] + [(f'"{n}","{label}"' if quote else f"{n},{label}") for n, label in rows]
    return ("\n".join(lines) + "\n").encode("utf-8", errors="surrogatepass")


def _course_root(scratch):
    root = scratch / "course"
    if not root.exists():
        (root / "data" / "sub").mkdir(parents=True)
        for i in range(3):
            (root / "data" / f"{i:05d}.png").write_bytes(PNG_SEEDS[0])
        (root / "data" / "sub" / "00000.png").write_bytes(PNG_SEEDS[0])
        # Outside data/: a 9x9 image, so reading it would show as a different size.
        secret = scratch / "secret.png"
        secret.write_bytes(_encode(Image.new("L", (9, 9)), "PNG"))
        (root / "secret.png").write_bytes(secret.read_bytes())
        (root / "data" / "LINK_OUT").symlink_to(secret)
        (root / "data" / "LINK_IN").symlink_to(root / "data" / "00000.png")
    return root


@given(csv_bytes=course_csvs(), split=st.sampled_from(["train", "val"]))
def test_fuzz_course_csv(scratch, csv_bytes, split):
    root = _course_root(scratch)
    for name in ("train.csv", "val.csv"):
        (root / name).unlink(missing_ok=True)
    secret_abs = str(scratch / "secret.png")
    (root / f"{split}.csv").write_bytes(csv_bytes.replace(b"SECRET_ABS", secret_abs.encode()))
    splits = outcome(lambda: read_source(root, progress=False))
    if splits is not None:
        check_splits(splits)
        for digits in splits.values():
            assert digits.size == (8, 8), "an image from outside data/ was read"


# --- beyond the list: the MNIST-M release's labels file, and a zip of face images ---------------------------

def _mnistm_root(scratch):
    root = scratch / "mnistm"
    if not root.exists():
        (root / "mnist_m_train").mkdir(parents=True)
        for i in range(3):
            (root / "mnist_m_train" / f"{i:08d}.png").write_bytes(PNG_SEEDS[1])
        (root / "secret.png").write_bytes(_encode(Image.new("RGB", (9, 9)), "PNG"))
    return root


_MNISTM_LINES = st.lists(st.tuples(st.one_of(st.sampled_from(["00000000.png", "00000002.png", "../secret.png", "/etc/hostname", "x"]),
                                             st.text(max_size=10)), _LABELS), max_size=5)


@given(data=st.one_of(file_bytes(b"00000000.png 5\n00000001.png 0\n00000002.png 9\n", max_random=128),
                      _MNISTM_LINES.map(lambda rows: "\n".join(f"{n} {label}" for n, label in rows).encode("utf-8", errors="surrogatepass"))))
def test_fuzz_mnistm_labels(scratch, data):
    root = _mnistm_root(scratch)
    (root / "mnist_m_train_labels.txt").write_bytes(data)
    splits = outcome(lambda: read_source(root, progress=False))
    if splits is not None:
        check_splits(splits)
        assert splits["train"].size == (8, 8), "an image from outside mnist_m_train/ was read"


def _zip(members: dict[str, bytes]) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


FACES_SEED = _zip({"000001.png": PNG_SEEDS[1], "000002.jpg": OTHER_SEEDS[0]})


@given(data=st.one_of(file_bytes(FACES_SEED), png_files().map(lambda png: _zip({"000001.png": PNG_SEEDS[1], "000002.png": png}))))
def test_fuzz_face_zip(scratch, data):
    from diffadapt.data.face_images import read_face_images

    path = scratch / "faces.zip"
    path.write_bytes(data)
    faces = outcome(lambda: read_face_images(path, 16))
    if faces is not None:
        assert faces.dtype == np.uint8 and faces.ndim == 4 and faces.shape[1:] == (16, 16, 3) and len(faces) >= 1
