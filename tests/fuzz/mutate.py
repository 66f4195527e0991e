"""Mutations of small valid files, and the one rule every fuzzed reader is held to.

A mutation is a short list of edits applied in order to a seed file's bytes: flip bits in a byte, set a
byte, insert or delete bytes, truncate, duplicate a chunk, or overwrite 1, 2, 4 or 8 bytes with an
"interesting" integer (0, 1, the signed and unsigned extremes, in both byte orders) - the last is what
turns a header's size field into a huge declared size. Fully random bytes come in besides.

The rule: a reader returns a valid result or raises :class:`~diffadapt.errors.InputError` with a one-line
message; any other exception fails the test, and so does any warning it lets out.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import event
from hypothesis import strategies as st

from diffadapt.data.types import NUM_CLASSES, UNLABELLED, DigitSet
from diffadapt.errors import InputError

INTERESTING = [0, 1, 2, 3, 7, 8, 16, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF,
               0x80000000, 0xFFFFFFFF, 2**32, 2**63 - 1, 2**63, 2**64 - 1]


def _edit(kind: str, data: bytearray, draw) -> bytearray:
    n = len(data)
    if kind == "flip" and n:
        i = draw(st.integers(0, n - 1))
        data[i] ^= draw(st.integers(1, 255))
    elif kind == "set" and n:
        data[draw(st.integers(0, n - 1))] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x2C, 0x2E, 0x2F, 0x3A]))
    elif kind == "insert":
        i = draw(st.integers(0, n))
        data[i:i] = draw(st.binary(min_size=1, max_size=64))
    elif kind == "delete" and n:
        i = draw(st.integers(0, n - 1))
        del data[i : i + draw(st.integers(1, 64))]
    elif kind == "truncate":
        del data[draw(st.integers(0, n)) :]
    elif kind == "duplicate" and n:
        i = draw(st.integers(0, n - 1))
        chunk = data[i : i + draw(st.integers(1, 256))]
        j = draw(st.integers(0, n))
        data[j:j] = chunk
    elif kind == "integer" and n:
        width = draw(st.sampled_from([1, 2, 4, 8]))
        value = draw(st.sampled_from(INTERESTING)) % (1 << (8 * width))
        order = draw(st.sampled_from(["big", "little"]))
        i = draw(st.integers(0, max(0, n - width)))
        data[i : i + width] = value.to_bytes(width, order)[: n - i]
    return data


@st.composite
def mutated(draw, seed: bytes, max_edits: int = 6) -> bytes:
    """``seed`` with 1..``max_edits`` random edits (see the module docstring)."""
    data = bytearray(seed)
    kinds = draw(st.lists(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "duplicate", "integer"]),
                          min_size=1, max_size=max_edits))
    for kind in kinds:
        data = _edit(kind, data, draw)
    return bytes(data)


def file_bytes(*seeds: bytes, max_random: int = 512) -> st.SearchStrategy[bytes]:
    """Mutations of any of ``seeds`` (mostly), the seeds themselves, and fully random bytes."""
    mutations = st.sampled_from(seeds).flatmap(mutated)
    return st.one_of(mutations, mutations, mutations, st.sampled_from(seeds), st.binary(max_size=max_random))


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every PNG chunk's CRC, so a mutation reaches the decoder instead of PIL's CRC check."""
    out = bytearray(data)
    position = 8
    while position + 12 <= len(out):
        length = struct.unpack(">I", out[position : position + 4])[0]
        end = position + 8 + length
        if end + 4 > len(out):
            break
        out[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(out[position + 4 : end])))
        position = end + 4
    return bytes(out)


def outcome(call: Callable[[], Any]) -> Any:
    """``call()``'s result, or None when it raised InputError; anything else, or a warning, fails."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except InputError as exc:
            message = str(exc)
            assert message and "\n" not in message, repr(message)
            result = None
    event("outcome: InputError" if result is None else "outcome: valid result")
    assert not caught, f"warnings let out: {[f'{w.category.__name__}: {w.message}' for w in caught]}"
    return result


def check_image(image: np.ndarray, max_pixels: int | None = None) -> None:
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8, (type(image), getattr(image, "dtype", None))
    assert image.ndim == 3 and image.shape[2] in (1, 3) and min(image.shape[:2]) >= 1, image.shape
    if max_pixels is not None:
        assert image.shape[0] * image.shape[1] <= max_pixels


def check_digits(digits: DigitSet, unlabelled: bool = False) -> None:
    assert isinstance(digits, DigitSet)
    images, labels = digits.images, digits.labels
    assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[3] in (1, 3), (images.shape, images.dtype)
    assert images.shape[0] >= 1 and min(images.shape[1:3]) >= 1, images.shape
    assert labels.dtype == np.int64 and labels.shape == (len(images),)
    if unlabelled:
        assert (labels == UNLABELLED).all()
    else:
        assert labels.min() >= 0 and labels.max() < NUM_CLASSES, labels


def check_splits(splits: dict[str, DigitSet]) -> None:
    assert isinstance(splits, dict) and splits
    for split, digits in splits.items():
        assert split in ("train", "val", "test", "extra", "unlabelled"), split
        check_digits(digits, unlabelled=split == "unlabelled")
